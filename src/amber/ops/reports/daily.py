"""The daily report: what every job did in the last 24 hours, from the state database.

Per job: its runs (status, duration, bytes added, files, errors), the
verification steps (checks and their errors), the copies to mirrors, and
whether a scheduled job missed its window. :func:`subject` gives the counts
line a mail subject carries ("5 ok, 1 partial, 0 failed").
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from amber.ops import board
from amber.ops.board import schedule_times
from amber.ops.config.model import Config
from amber.ops.reports import render
from amber.ops.reports.document import (
    Chart,
    Document,
    Protection,
    Section,
    Series,
    Table,
    counts_text,
    period_document,
    protection,
    protection_section,
    seconds,
    size,
    when,
)
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
    bytes_read: int | None = None  # the source's size, from the backup step
    bytes_stored: int | None = None  # bytes written to packs (after compression)


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
    protection: list[Protection] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        found = {"ok": 0, "partial": 0, "failed": 0, "missed": 0}
        for job in self.jobs:
            key = {"success": "ok", "interrupted": "failed"}.get(job.outcome, job.outcome)
            if key in found:
                found[key] += 1
        return found

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "counts": self.counts(),
                "jobs": [{**asdict(j), "outcome": j.outcome} for j in self.jobs],
                "protection": [p.as_dict() for p in self.protection]}  # fmt: skip


def _line(run: RunRecord) -> RunLine:
    steps = [d.details for d in run.destinations if d.step == "backup" and isinstance(d.details, dict)]
    backup = steps[0] if steps else {}
    read, stored = backup.get("bytes"), backup.get("data_added_stored")
    return RunLine(run.started, run.status, (run.ended or run.started) - run.started, run.bytes_added,
                   run.files, [redact(e) for e in run.errors], read if isinstance(read, int) else None,
                   stored if isinstance(stored, int) else None)  # fmt: skip


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
    lines = [protection(s.verdict, s.facts) for s in board.board(config, end, sample=False)]
    return DailyReport(start, end, jobs, lines)


def subject(report: DailyReport) -> str:
    return counts_text(report.counts())


def _runs_table(report: DailyReport) -> Table:
    rows = []
    for job in report.jobs:
        for r in job.runs:
            rows.append((job.job, when(r.started), r.status, seconds(r.duration), str(r.files),
                         size(r.bytes_read), size(r.bytes_added), size(r.bytes_stored),
                         str(len(r.errors))))  # fmt: skip
    return Table(("job", "started", "status", "duration", "files", "read", "added", "stored", "errors"),
                 tuple(rows), numeric=(3, 4, 5, 6, 7, 8), toned=(2,))  # fmt: skip


def document(report: DailyReport, host: str = "") -> Document:
    rows = tuple((j.job, j.outcome, str(len(j.runs))) for j in report.jobs)
    outcomes = Table(("job", "outcome", "runs"), rows, (2,), (1,))
    chart = Chart("Bytes added per job", "bars", tuple(j.job for j in report.jobs),
                  (Series("added", tuple(float(sum(r.bytes_added for r in j.runs)) for j in report.jobs)),),
                  "bytes")  # fmt: skip
    checks = [(j.job, c["repository"], c["status"], str(c["errors"])) for j in report.jobs for c in j.checks]
    copies = [(j.job, c["repository"], c["status"], str(c["snapshot"])[:8])
              for j in report.jobs for c in j.copies]  # fmt: skip
    failures = [f"{j.job} {when(r.started)}: {e}" for j in report.jobs for r in j.runs for e in r.errors[:5]]
    missed = tuple(f"{j.job}: no run in the last 24 hours although scheduled"
                   for j in report.jobs if j.missed)  # fmt: skip
    check_table = Table(("job", "repository", "result", "errors"), tuple(checks), (3,), (2,))
    copy_table = Table(("job", "repository", "status", "snapshot"), tuple(copies), (), (2,))
    sections = (
        Section("Jobs", (outcomes,), (chart,) if report.jobs else (), missed),
        Section("Runs", (_runs_table(report),) if any(j.runs for j in report.jobs) else (), empty="no runs"),
        Section("Verification (SHA-256 of stored data)", (check_table,) if checks else (),
                empty="no verification in the period"),
        Section("Copies", (copy_table,) if copies else (), empty="no copies in the period"),
        Section("Failures", items=tuple(redact(f) for f in failures), empty="none"),
        protection_section(report.protection, report.end),
    )  # fmt: skip
    return period_document("daily", report, subject(report), sections, host)


def render_text(report: DailyReport) -> str:
    return render.text(document(report))


def render_json(report: DailyReport) -> str:
    return json.dumps(report.as_dict(), indent=2) + "\n"
