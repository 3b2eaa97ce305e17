"""Retention: which snapshots a grandfather-father-son policy keeps. Pure, no I/O.

The semantics are restic's ``forget``:

* Snapshots are grouped (by host and paths unless told otherwise) and each group
  is judged on its own, newest first.
* A ``keep_daily=N`` bucket keeps the newest snapshot of each of the last N
  distinct days that have a snapshot; days without a snapshot do not count. Hourly,
  weekly (ISO weeks, ``isocalendar``), monthly and yearly work the same way, and
  ``keep_last`` treats every snapshot as its own bucket. ``-1`` means unlimited.
* Buckets use each snapshot's own wall-clock time (its recorded UTC offset), so a
  backup at 23:30 local time belongs to that local day.
* If a count bucket still has counts left when the oldest snapshot is reached, the
  oldest is kept too: this keeps the longest history the policy allows.
* ``keep_within`` keeps everything newer than the newest snapshot minus a duration
  (``1y2m3d4h``); ``keep_within_daily`` and friends keep one snapshot per bucket
  inside such a window. Durations count from the newest snapshot, not from now,
  so a machine that stopped backing up does not lose its history.
* ``keep_tags``: each entry is ``a,b`` (all of them must be present); a snapshot
  matching any entry is kept, and is not counted in a bucket.

A policy that keeps nothing explicitly is refused (``UsageError``): it would
otherwise remove every snapshot.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from amber.errors import UsageError

UNLIMITED = -1
GROUP_FIELDS = ("host", "paths", "tags")


@dataclass(frozen=True)
class Duration:
    """A calendar duration: years, months and days are calendar steps, hours are real hours."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    def is_zero(self) -> bool:
        return not (self.years or self.months or self.days or self.hours)

    def __str__(self) -> str:
        parts = [(self.years, "y"), (self.months, "m"), (self.days, "d"), (self.hours, "h")]
        return "".join(f"{n}{unit}" for n, unit in parts if n) or "0h"

    def before(self, moment: dt.datetime) -> dt.datetime:
        """``moment`` minus this duration (calendar arithmetic in the wall clock of ``moment``)."""
        month_index = moment.year * 12 + (moment.month - 1) - self.years * 12 - self.months
        year, month = divmod(month_index, 12)
        # Like Go's AddDate: an overflowing day (31 Feb) rolls into the next month.
        shifted = moment.replace(year=year, month=month + 1, day=1) + dt.timedelta(days=moment.day - 1)
        shifted -= dt.timedelta(days=self.days)
        return (shifted.astimezone(dt.UTC) - dt.timedelta(hours=self.hours)).astimezone(moment.tzinfo)


_DURATION_PART = re.compile(r"(\d+)([ymwdh])", re.IGNORECASE)


def parse_duration(text: str) -> Duration:
    """Parse ``1y2m3d4h`` (any subset, in any order; ``m`` is months, ``w`` is 7 days)."""
    if not text:
        raise UsageError("empty duration")
    values: dict[str, int] = {}
    pos = 0
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if m is None:
            raise UsageError(f"invalid duration {text!r}: expected e.g. 1y2m3d4h")
        unit = m.group(2).lower()
        if unit in values:
            raise UsageError(f"invalid duration {text!r}: unit {unit!r} given twice")
        values[unit] = int(m.group(1))
        pos = m.end()
    days = values.get("d", 0) + 7 * values.get("w", 0)
    return Duration(values.get("y", 0), values.get("m", 0), days, values.get("h", 0))


@dataclass(frozen=True)
class SnapshotRecord:
    id: str
    time: dt.datetime  # aware
    hostname: str = ""
    paths: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy:
    keep_last: int = 0
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    keep_within: Duration = Duration()
    keep_within_hourly: Duration = Duration()
    keep_within_daily: Duration = Duration()
    keep_within_weekly: Duration = Duration()
    keep_within_monthly: Duration = Duration()
    keep_within_yearly: Duration = Duration()
    keep_tags: tuple[str, ...] = ()  # each "a,b": a snapshot with all of a and b is kept

    def counts(self) -> tuple[int, ...]:
        return (self.keep_last, self.keep_hourly, self.keep_daily,
                self.keep_weekly, self.keep_monthly, self.keep_yearly)  # fmt: skip

    def windows(self) -> tuple[Duration, ...]:
        return (self.keep_within_hourly, self.keep_within_daily, self.keep_within_weekly,
                self.keep_within_monthly, self.keep_within_yearly)  # fmt: skip

    def is_empty(self) -> bool:
        return (
            not any(self.counts())
            and self.keep_within.is_zero()
            and all(w.is_zero() for w in self.windows())
            and not self.keep_tags
        )

    def validate(self) -> None:
        for n in self.counts():
            if n < UNLIMITED:
                raise UsageError(f"invalid keep count {n}: use a positive number, or -1 for unlimited")
        if self.is_empty():
            raise UsageError("no policy given: pass at least one --keep-* option (or snapshot IDs)")


@dataclass(frozen=True)
class GroupKey:
    hostname: str | None = None
    paths: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None

    def sort_key(self) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        return (self.hostname or "", self.paths or (), self.tags or ())


@dataclass
class GroupResult:
    key: GroupKey
    keep: list[SnapshotRecord] = field(default_factory=list)  # newest first
    remove: list[SnapshotRecord] = field(default_factory=list)  # newest first
    reasons: dict[str, list[str]] = field(default_factory=dict)  # snapshot ID -> why it is kept


# Bucket functions: a snapshot's wall-clock time -> bucket value.
def _hour(t: dt.datetime) -> tuple[int, ...]:
    return (t.year, t.month, t.day, t.hour)


def _day(t: dt.datetime) -> tuple[int, ...]:
    return (t.year, t.month, t.day)


def _week(t: dt.datetime) -> tuple[int, ...]:
    iso = t.isocalendar()  # ISO year and week: 31 Dec can be week 1 of the next year
    return (iso.year, iso.week)


def _month(t: dt.datetime) -> tuple[int, ...]:
    return (t.year, t.month)


def _year(t: dt.datetime) -> tuple[int, ...]:
    return (t.year,)


Bucketer = Callable[[dt.datetime], tuple[int, ...]]
_COUNT_RULES: tuple[tuple[str, Bucketer | None], ...] = (
    ("last", None),  # every snapshot is its own bucket
    ("hourly", _hour),
    ("daily", _day),
    ("weekly", _week),
    ("monthly", _month),
    ("yearly", _year),
)
_WINDOW_RULES: tuple[tuple[str, Bucketer], ...] = (
    ("hourly", _hour),
    ("daily", _day),
    ("weekly", _week),
    ("monthly", _month),
    ("yearly", _year),
)


def _has_tags(snap: SnapshotRecord, spec: str) -> bool:
    wanted = {t for t in spec.split(",") if t}
    return bool(wanted) and wanted <= set(snap.tags)


def _instant(moment: dt.datetime) -> float:
    # Compare instants, never wall clocks: Python compares two datetimes that share a
    # tzinfo by wall time and ignores ``fold``, which is wrong in a DST fall-back hour.
    return moment.timestamp()


def _newest_first(snaps: Iterable[SnapshotRecord]) -> list[SnapshotRecord]:
    return sorted(snaps, key=lambda s: (_instant(s.time), s.id), reverse=True)


def _latest(snaps: Sequence[SnapshotRecord], now: dt.datetime | None) -> dt.datetime:
    """The newest snapshot time; with ``now``, snapshots dated in the future are ignored."""
    times = [s.time for s in snaps if now is None or _instant(s.time) <= _instant(now)]
    return max(times, key=_instant) if times else snaps[0].time


def apply_policy(
    snaps: Iterable[SnapshotRecord], policy: Policy, now: dt.datetime | None = None
) -> tuple[list[SnapshotRecord], list[SnapshotRecord], dict[str, list[str]]]:
    """Judge one group: (keep, remove, reasons), both lists newest first."""
    policy.validate()
    ordered = _newest_first(snaps)
    keep: list[SnapshotRecord] = []
    remove: list[SnapshotRecord] = []
    reasons: dict[str, list[str]] = {}
    if not ordered:
        return keep, remove, reasons
    latest = _latest(ordered, now)
    within_start = _instant(policy.keep_within.before(latest))
    window_starts = [_instant(w.before(latest)) for w in policy.windows()]
    left = list(policy.counts())
    last_bucket: list[tuple[int, ...] | None] = [None] * len(_COUNT_RULES)
    last_window_bucket: list[tuple[int, ...] | None] = [None] * len(_WINDOW_RULES)
    oldest = len(ordered) - 1
    for nr, snap in enumerate(ordered):
        why: list[str] = [f"has tags {spec}" for spec in policy.keep_tags if _has_tags(snap, spec)]
        when = _instant(snap.time)
        if not policy.keep_within.is_zero() and when > within_start:
            why.append(f"within {policy.keep_within}")
        for i, (name, bucketer) in enumerate(_COUNT_RULES):
            if left[i] == 0:
                continue
            value = (nr,) if bucketer is None else bucketer(snap.time)
            if value != last_bucket[i]:
                why.append(f"{name} snapshot")
            elif nr == oldest:
                why.append(f"oldest {name} snapshot")  # counts left: keep the longest history
            else:
                continue
            last_bucket[i] = value
            if left[i] > 0:
                left[i] -= 1
        for i, (name, bucketer) in enumerate(_WINDOW_RULES):
            window = policy.windows()[i]
            if window.is_zero() or not when > window_starts[i]:
                continue
            value = bucketer(snap.time)
            if value != last_window_bucket[i]:
                last_window_bucket[i] = value
                why.append(f"{name} within {window}")
        if why:
            keep.append(snap)
            reasons[snap.id] = why
        else:
            remove.append(snap)
    return keep, remove, reasons


def parse_group_by(text: str) -> tuple[str, ...]:
    """``host,paths`` -> ("host", "paths"); an empty string means one group for everything."""
    fields = tuple(f.strip() for f in text.split(",") if f.strip())
    for f in fields:
        if f not in GROUP_FIELDS:
            raise UsageError(f"invalid --group-by field {f!r}: choose from host, paths, tags")
    return fields


def group_key(snap: SnapshotRecord, group_by: Sequence[str]) -> GroupKey:
    return GroupKey(
        hostname=snap.hostname if "host" in group_by else None,
        paths=tuple(sorted(snap.paths)) if "paths" in group_by else None,
        tags=tuple(sorted(snap.tags)) if "tags" in group_by else None,
    )


def group_snapshots(
    snaps: Iterable[SnapshotRecord], group_by: Sequence[str]
) -> dict[GroupKey, list[SnapshotRecord]]:
    groups: dict[GroupKey, list[SnapshotRecord]] = {}
    for snap in snaps:
        groups.setdefault(group_key(snap, group_by), []).append(snap)
    return dict(sorted(groups.items(), key=lambda item: item[0].sort_key()))


def plan(
    snaps: Iterable[SnapshotRecord],
    policy: Policy,
    group_by: Sequence[str] = ("host", "paths"),
    now: dt.datetime | None = None,
) -> list[GroupResult]:
    """Group the snapshots and apply the policy to each group."""
    policy.validate()
    results = []
    for key, members in group_snapshots(snaps, group_by).items():
        keep, remove, reasons = apply_policy(members, policy, now)
        results.append(GroupResult(key, keep, remove, reasons))
    return results
