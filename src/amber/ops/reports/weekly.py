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

from amber.ops.config.model import Config
from amber.ops.drills.history import DrillHistory
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

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.runs if self.runs else None


def _week(runs: list[RunRecord]) -> Week:
    durations = [(r.ended or r.started) - r.started for r in runs]
    return Week(len(runs), sum(r.status == "success" for r in runs), sum(r.bytes_added for r in runs),
                percentile(durations, 50), percentile(durations, 95))  # fmt: skip


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

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end,
                "verified": sum(j.verified for j in self.jobs), "drilled": sum(j.drilled for j in self.jobs),
                "jobs": [{**asdict(j), "success_rate": j.this.success_rate,
                          "last_success_rate": j.last.success_rate} for j in self.jobs]}  # fmt: skip


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
    return WeeklyReport(start, end, jobs)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def render_text(report: WeeklyReport) -> str:
    lines = ["amber weekly report: "
             f"{sum(j.verified for j in report.jobs)}/{len(report.jobs)} jobs verified, "
             f"{sum(j.drilled for j in report.jobs)}/{len(report.jobs)} drilled", ""]  # fmt: skip
    for j in report.jobs:
        lines.append(f"{j.job}: {j.this.runs} runs, success {_pct(j.this.success_rate)} "
                     f"(last week {_pct(j.last.success_rate)}), {j.this.bytes_added} bytes added "
                     f"(last week {j.last.bytes_added})")  # fmt: skip
        lines.append(f"  duration p50 {_secs(j.this.p50)} p95 {_secs(j.this.p95)} "
                     f"(last week p50 {_secs(j.last.p50)} p95 {_secs(j.last.p95)})")  # fmt: skip
        lines.append(f"  verified: {'yes' if j.verified else 'no'}, drilled: {'yes' if j.drilled else 'no'}")
        lines.extend(f"  {count} x {pattern}" for pattern, count in j.errors)
    return "\n".join(lines) + "\n"


def render_json(report: WeeklyReport) -> str:
    return json.dumps(report.as_dict(), indent=2) + "\n"
