"""The monthly report: growth, capacity forecast, daily coverage and rule-based recommendations.

Per repository: growth per day and "full in N days" from the usage samples
(``forecast``). Per job: runs and success rate, the share of days with a
successful backup, and the median duration against the month before.
Recommendations: every reason the protection verdict gives now, a duration
that grew by more than :data:`DURATION_GROWTH`, and a repository full within
the verdict policy's warning horizon.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from amber.ops import board
from amber.ops.config.model import Config
from amber.ops.reports.forecast import Forecast, forecast
from amber.ops.reports.usage import UsageLog
from amber.ops.state import RunRecord, StateDB
from amber.ops.verdict import Policy

MONTH = 30 * 86400.0
DURATION_GROWTH = 0.2


@dataclass
class RepoMonth:
    name: str
    samples: int
    growth_per_day: float | None  # bytes/day, None below 7 samples
    forecast: str


@dataclass
class JobMonth:
    job: str
    runs: int
    success_rate: float | None
    days_covered: int  # days with a successful backup started
    median_duration: float | None
    last_median_duration: float | None


@dataclass
class MonthlyReport:
    start: float
    end: float
    repositories: list[RepoMonth]
    jobs: list[JobMonth]
    recommendations: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _median(runs: list[RunRecord]) -> float | None:
    durations = [(r.ended or r.started) - r.started for r in runs]
    return statistics.median(durations) if durations else None


def monthly(config: Config, end: float, policy: Policy | None = None) -> MonthlyReport:
    policy = policy or Policy()
    db, usage = StateDB(config.state.path), UsageLog(config.state.path)
    start = end - MONTH
    report = MonthlyReport(start, end, [], [])
    for name in config.repositories:
        samples = usage.samples(name, start)
        fit: Forecast = forecast(samples, end)
        report.repositories.append(RepoMonth(name, fit.samples, fit.slope_per_day, fit.describe()))
        if fit.days_until_full is not None and fit.days_until_full <= policy.full_warn_days:
            report.recommendations.append(f"add space to {name}: {fit.describe()}")
    for name in config.jobs:
        window = [r for r in db.runs(name, limit=5000) if end - 2 * MONTH <= r.started < end]
        runs = [r for r in window if r.status != "running"]
        this, last = [r for r in runs if r.started >= start], [r for r in runs if r.started < start]
        ok = [r for r in this if r.status == "success"]
        days = {dt.datetime.fromtimestamp(r.started, dt.UTC).date() for r in ok}
        job = JobMonth(name, len(this), len(ok) / len(this) if this else None, len(days), _median(this),
                       _median(last))  # fmt: skip
        report.jobs.append(job)
        if job.median_duration and job.last_median_duration and \
                job.median_duration > (1 + DURATION_GROWTH) * job.last_median_duration:
            growth = job.median_duration / job.last_median_duration - 1
            report.recommendations.append(f"{name}: median duration grew {growth:.0%} against last month")
    for status in board.board(config, end, sample=False):
        report.recommendations.extend(f"{status.name}: {text}" for text in status.verdict.texts)
    return report


def render_text(report: MonthlyReport) -> str:
    lines = ["amber monthly report", "", "Repositories:"]
    for r in report.repositories:
        growth = "-" if r.growth_per_day is None else f"{r.growth_per_day / 2**20:+.1f} MiB/day"
        lines.append(f"  {r.name}: {growth}; {r.forecast}")
    lines += ["", "Jobs:"]
    for j in report.jobs:
        rate = "-" if j.success_rate is None else f"{j.success_rate:.0%}"
        med = "-" if j.median_duration is None else f"{j.median_duration:.1f} s"
        prev = "-" if j.last_median_duration is None else f"{j.last_median_duration:.1f} s"
        lines.append(f"  {j.job}: {j.runs} runs, success {rate}, {j.days_covered} days with a backup, "
                     f"median duration {med} (last month {prev})")  # fmt: skip
    lines += ["", "Recommendations:"] + [f"  - {r}" for r in report.recommendations or ["none"]]
    return "\n".join(lines) + "\n"


def render_json(report: MonthlyReport) -> str:
    return json.dumps(report.as_dict(), indent=2) + "\n"
