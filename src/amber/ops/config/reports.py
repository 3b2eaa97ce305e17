"""``[reports.daily]``, ``[reports.weekly]``, ``[reports.monthly]``: which reports are sent, when, to whom.

Recipients are ``[[notify]]`` targets, so mail settings live in one place:
``targets`` lists them by number (1-based, as ``amber notify test --target``),
and without it every target whose ``events`` include ``summary`` gets the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amber.ops.config.check import Reader
from amber.ops.config.sections import NotifyConfig

KINDS = ("daily", "weekly", "monthly")


@dataclass(frozen=True)
class ReportConfig:
    kind: str  # daily | weekly | monthly
    schedule: str  # OnCalendar: when the daemon or the timer sends it
    targets: tuple[int, ...] = ()  # 1-based [[notify]] indexes; () = the targets wanting "summary"
    html: bool = True  # mail: an HTML part beside the text
    pdf: bool = False  # attach the PDF (needs amber[pdf])

    def recipients(self, notify: tuple[NotifyConfig, ...]) -> list[NotifyConfig]:
        if self.targets:
            return [notify[i - 1] for i in self.targets]
        return [t for t in notify if "summary" in t.events]


def parse_reports(r: Reader, t: dict[str, Any], notify: tuple[NotifyConfig, ...]) -> dict[str, ReportConfig]:
    r.only(t, ("reports",), KINDS)
    out = {}
    for kind, table in r.tables({"reports": t}, ("reports",)):
        p = ("reports", kind)
        r.only(table, p, ("schedule", "targets", "html", "pdf"))
        schedule = r.calendar(table, p, "schedule")
        if schedule is None:
            r.fail(p, "missing key 'schedule' (an OnCalendar time, e.g. 'Mon *-*-* 07:00')")
        raw = table.get("targets", [])
        if not isinstance(raw, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in raw):
            r.fail((*p, "targets"), "expected a list of [[notify]] numbers (1-based)")
        for j, index in enumerate(raw):
            if not 1 <= index <= len(notify):
                r.fail((*p, "targets", j), f"no [[notify]] target {index} (there are {len(notify)})")
        report = ReportConfig(kind, schedule, tuple(raw), r.boolean(table, p, "html", True),
                              r.boolean(table, p, "pdf", False))  # fmt: skip
        if not report.recipients(notify):
            r.fail(p, "nobody to send it to: set targets, or add 'summary' to a [[notify]] target's events")
        out[kind] = report
    return out
