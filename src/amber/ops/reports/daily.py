"""The daily report: what every job did in the last 24 hours, from the state database.

Per job: its runs (status, duration, bytes added, files, errors), the
verification steps (checks and their errors), the copies to mirrors, and
whether a scheduled job missed its window. :func:`subject` gives the counts
line a mail subject carries ("5 ok, 1 partial, 0 failed").
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from amber.ops.board import schedule_times
from amber.ops.config.model import Config
from amber.ops.state import RunRecord, StateDB
from amber.redact import redact

DAY = 86400.0


@dataclass
class RunLine:
    started: float
    status: str
    duration: float
    bytes_added: int
    files: int
    errors: list[str]


@dataclass
class JobDay:
    job: str
    runs: list[RunLine] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)  # repository, status, errors
    copies: list[dict[str, Any]] = field(default_factory=list)  # repository, status, snapshot
    missed: bool = False  # scheduled, but no run started in the window

    @property
    def outcome(self) -> str:
        """The worst finished run's status; "missed" or "idle" without runs."""
        order = ("failed", "interrupted", "partial", "success")
        for status in order:
            if any(r.status == status for r in self.runs):
                return status
        return "missed" if self.missed else "idle"


@dataclass
class DailyReport:
    start: float
    end: float
    jobs: list[JobDay]

    def counts(self) -> dict[str, int]:
        found = {"ok": 0, "partial": 0, "failed": 0, "missed": 0}
        for job in self.jobs:
            key = {"success": "ok", "interrupted": "failed"}.get(job.outcome, job.outcome)
            if key in found:
                found[key] += 1
        return found

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "counts": self.counts(),
                "jobs": [{**asdict(j), "outcome": j.outcome} for j in self.jobs]}  # fmt: skip


def _line(run: RunRecord) -> RunLine:
    return RunLine(run.started, run.status, (run.ended or run.started) - run.started, run.bytes_added,
                   run.files, [redact(e) for e in run.errors])  # fmt: skip


def daily(config: Config, end: float, db: StateDB | None = None) -> DailyReport:
    """The 24 hours before ``end`` (unix time)."""
    db = db or StateDB(config.state.path)
    start = end - DAY
    jobs = []
    for name, job in config.jobs.items():
        day = JobDay(name)
        for run in reversed(db.runs(name, limit=1000)):  # oldest first
            if not start <= run.started < end or run.status == "running":
                continue
            day.runs.append(_line(run))
            for d in run.destinations:
                errors = d.details.get("errors", []) if isinstance(d.details, dict) else []
                if d.step == "check" and d.status != "skipped":
                    day.checks.append({"repository": d.name, "status": d.status, "errors": len(errors)})
                elif d.step == "copy":
                    day.copies.append({"repository": d.name, "status": d.status, "snapshot": d.snapshot_id})
        _next, interval = schedule_times(job.schedule, start)
        day.missed = bool(interval and interval <= DAY and not day.runs)
        jobs.append(day)
    return DailyReport(start, end, jobs)


def subject(report: DailyReport) -> str:
    c = report.counts()
    text = f"{c['ok']} ok, {c['partial']} partial, {c['failed']} failed"
    return text + (f", {c['missed']} missed" if c["missed"] else "")


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def render_text(report: DailyReport) -> str:
    lines = [f"amber daily report {_when(report.start)} - {_when(report.end)}: {subject(report)}", ""]
    for job in report.jobs:
        lines.append(f"{job.job}: {job.outcome}")
        for r in job.runs:
            lines.append(f"  {_when(r.started)}  {r.status:<11} {r.duration:7.1f} s  {r.files} files  "
                         f"{r.bytes_added} bytes added")  # fmt: skip
            lines.extend(f"    error: {e}" for e in r.errors[:5])
        for c in job.checks:
            lines.append(f"  verify {c['repository']}: {c['status']}, {c['errors']} error(s)")
        for c in job.copies:
            lines.append(f"  copy to {c['repository']}: {c['status']}")
        if job.missed:
            lines.append("  no run in the last 24 hours although scheduled")
    return "\n".join(lines) + "\n"


def render_json(report: DailyReport) -> str:
    return json.dumps(report.as_dict(), indent=2) + "\n"
