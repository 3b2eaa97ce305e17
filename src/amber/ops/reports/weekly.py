"""The weekly report: seven days per job against the seven before.

Success rate, bytes added, duration p50/p95 (this week and last), the most
frequent error patterns (fingerprinted: numbers, hex IDs, paths and URLs
masked so the same failure counts once), and verification and drill coverage.
"""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from amber.ops import board
from amber.ops.config.model import Config
from amber.ops.drills.history import DrillHistory
from amber.ops.reports import render
from amber.ops.reports.document import (
    Chart,
    Document,
    Protection,
    Section,
    Series,
    Table,
    counts_text,
    percent,
    period_document,
    protection,
    protection_section,
    seconds,
    size,
    status_counts,
)
from amber.ops.run.scheduled_check import task as check_task
from amber.ops.state import RunRecord, StateDB
from amber.redact import redact

WEEK = 7 * 86400.0
_MASKS = [
    (re.compile(r"[a-z][a-z0-9+.-]*://\S+", re.I), "<url>"),
    (re.compile(r"(?<![\w.])/[^\s:;,'\"]+"), "<path>"),
    (re.compile(r"\b[0-9a-f]{8,}\b", re.I), "<hex>"),
    (re.compile(r"\d+"), "<n>"),
]


def fingerprint(message: str) -> str:
    """The error with what varies between occurrences masked."""
    for pattern, mask in _MASKS:
        message = pattern.sub(mask, message)
    return message


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return float(values[0])
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


@dataclass
class Week:
    runs: int = 0
    successes: int = 0
    bytes_added: int = 0
    p50: float | None = None
    p95: float | None = None
    statuses: list[str] = field(default_factory=list)  # of every run, oldest first

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.runs if self.runs else None


def _week(runs: list[RunRecord]) -> Week:
    durations = [(r.ended or r.started) - r.started for r in runs]
    return Week(len(runs), sum(r.status == "success" for r in runs), sum(r.bytes_added for r in runs),
                percentile(durations, 50), percentile(durations, 95),
                [r.status for r in sorted(runs, key=lambda r: r.started)])  # fmt: skip


@dataclass
class JobWeek:
    job: str
    this: Week
    last: Week
    verified: bool  # a check step in the week
    drilled: bool
    errors: list[tuple[str, int]] = field(default_factory=list)  # (fingerprint, count), most frequent first


@dataclass
class WeeklyReport:
    start: float
    end: float
    jobs: list[JobWeek]
    protection: list[Protection] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return status_counts([s for j in self.jobs for s in j.this.statuses])

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end,
                "verified": sum(j.verified for j in self.jobs), "drilled": sum(j.drilled for j in self.jobs),
                "jobs": [{**asdict(j), "success_rate": j.this.success_rate,
                          "last_success_rate": j.last.success_rate} for j in self.jobs],
                "counts": self.counts(), "protection": [p.as_dict() for p in self.protection]}  # fmt: skip


def weekly(config: Config, end: float) -> WeeklyReport:
    db, drills = StateDB(config.state.path), DrillHistory(config.state.path).recent(limit=5000)
    start, before = end - WEEK, end - 2 * WEEK
    jobs = []
    for name, job in config.jobs.items():
        runs = [r for r in db.runs(name, limit=5000) if r.status != "running" and before <= r.started < end]
        this = [r for r in runs if r.started >= start]
        checks = [r for r in db.runs(check_task(name), limit=500) if start <= r.started < end]
        steps = [d for r in [*this, *checks] for d in r.destinations]
        verified = any(d.step == "check" and d.status != "skipped" for d in steps)
        drilled = any((d.job == name or (not d.job and d.repository == job.repository))
                      and start <= d.started < end for d in drills)  # fmt: skip
        counts = Counter(fingerprint(redact(e)) for r in this for e in r.errors)
        last = [r for r in runs if r.started < start]
        jobs.append(JobWeek(name, _week(this), _week(last), verified, drilled, counts.most_common(5)))
    lines = [protection(s.verdict, s.facts) for s in board.board(config, end, sample=False)]
    return WeeklyReport(start, end, jobs, lines)


def subject(report: WeeklyReport) -> str:
    n = len(report.jobs)
    return (f"{counts_text(report.counts())}; {sum(j.verified for j in report.jobs)}/{n} jobs verified, "
            f"{sum(j.drilled for j in report.jobs)}/{n} drilled")  # fmt: skip


def document(report: WeeklyReport, host: str = "") -> Document:
    jobs = [j.job for j in report.jobs]
    rows = tuple((j.job, str(j.this.runs), percent(j.this.success_rate), percent(j.last.success_rate),
                  size(j.this.bytes_added), size(j.last.bytes_added),
                  size(j.this.bytes_added - j.last.bytes_added), "yes" if j.verified else "no",
                  "yes" if j.drilled else "no") for j in report.jobs)  # fmt: skip
    columns = ("job", "runs", "success", "last week", "added", "last week", "change", "verified", "drilled")
    runs = Table(columns, rows, numeric=(1, 2, 3, 4, 5, 6), toned=(7, 8))
    durations = Table(("job", "p50", "p95", "last week p50", "last week p95"),
                      tuple((j.job, seconds(j.this.p50), seconds(j.this.p95), seconds(j.last.p50),
                             seconds(j.last.p95)) for j in report.jobs), numeric=(1, 2, 3, 4))  # fmt: skip
    added = Chart("Bytes added: this week and the week before", "bars", tuple(jobs),
                  (Series("this week", tuple(float(j.this.bytes_added) for j in report.jobs)),
                   Series("last week", tuple(float(j.last.bytes_added) for j in report.jobs))),
                  "bytes")  # fmt: skip
    p95 = Chart("Duration p95", "bars", tuple(jobs),
                (Series("this week", tuple(j.this.p95 or 0.0 for j in report.jobs)),
                 Series("last week", tuple(j.last.p95 or 0.0 for j in report.jobs))), "s")  # fmt: skip
    errors = tuple(f"{j.job}: {count} x {pattern}" for j in report.jobs for pattern, count in j.errors)
    n = len(report.jobs)
    coverage = (f"{sum(j.verified for j in report.jobs)} of {n} jobs verified this week",
                f"{sum(j.drilled for j in report.jobs)} of {n} jobs restore-drilled this week")  # fmt: skip
    sections = (
        Section("Runs and size", (runs,), (added,) if jobs else (), empty="no jobs configured"),
        Section("Durations", (durations,), (p95,) if jobs else (), empty="no jobs configured"),
        Section("Top error patterns", items=errors, empty="no errors"),
        Section("Verification and drill coverage", items=coverage),
        protection_section(report.protection, report.end),
    )  # fmt: skip
    return period_document("weekly", report, subject(report), sections, host)


def render_text(report: WeeklyReport) -> str:
    return render.text(document(report))


def render_json(report: WeeklyReport) -> str:
    return json.dumps(report.as_dict(), indent=2) + "\n"
