"""Names of amber's local snapshots: ``amber-<job>-<UTC timestamp>``, and parsing them back.

The timestamp has milliseconds so two runs of a job in one second get two
names; it sorts as text in time order. A rollback keeps the replaced state as
``amber-<job>-pre-rollback-<timestamp>``. Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

PREFIX = "amber-"
PRE_ROLLBACK = "pre-rollback"
_STAMP = r"\d{8}T\d{6}\.\d{3}Z"
_NAME = re.compile(rf"amber-(?P<job>.+?)(?P<pre>-{PRE_ROLLBACK})?-(?P<stamp>{_STAMP})")


@dataclass(frozen=True, order=True)
class SnapshotName:
    created: dt.datetime
    job: str
    pre_rollback: bool = False

    def __str__(self) -> str:
        stamp = self.created.strftime("%Y%m%dT%H%M%S.") + f"{self.created.microsecond // 1000:03d}Z"
        middle = f"{self.job}-{PRE_ROLLBACK}" if self.pre_rollback else self.job
        return f"{PREFIX}{middle}-{stamp}"


def new_name(job: str, now: dt.datetime | None = None, pre_rollback: bool = False) -> SnapshotName:
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return SnapshotName(now.replace(microsecond=now.microsecond // 1000 * 1000), job, pre_rollback)


def parse_name(text: str) -> SnapshotName | None:
    """The parts of an amber snapshot name; None for anything else (never amber's to delete)."""
    m = _NAME.fullmatch(text)
    if m is None:
        return None
    created = dt.datetime.strptime(m["stamp"], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=dt.UTC)
    return SnapshotName(created, m["job"], m["pre"] is not None)
