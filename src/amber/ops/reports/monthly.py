"""The monthly report: growth, capacity forecast, daily coverage and rule-based recommendations.

Per repository: growth per day and "full in N days" from the usage samples
(``forecast``). Per job: runs and success rate, the share of days with a
successful backup, and the median duration against the month before.
Recommendations: every reason the protection verdict gives now, a duration
that grew by more than :data:`DURATION_GROWTH`, a repository full within
the verdict policy's warning horizon, and stored data that grew by more than
:data:`STORED_GROWTH` while the snapshot count did not (:func:`stored_outgrows_snapshots`).
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from amber.ops import board
from amber.ops.anomaly_acks import AckLog
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
    percent,
    period_document,
    protection,
    protection_section,
    seconds,
    size,
    status_counts,
    when,
)
from amber.ops.reports.forecast import Forecast, Sample, forecast
from amber.ops.reports.usage import UsageLog
from amber.ops.state import RunRecord, StateDB
from amber.ops.verdict import Policy

MONTH = 30 * 86400.0
DURATION_GROWTH = 0.2
OUTLIER_MADS = 3.0  # a run this many (scaled) median absolute deviations from the median is unusual
MIN_RUNS_FOR_OUTLIERS = 5
STORED_GROWTH = 0.1


def stored_outgrows_snapshots(samples: Sequence[Sample]) -> tuple[float, int, int] | None:
    """(growth, snapshots first, snapshots last) when the used bytes of the month's first and last
    samples with a snapshot count grew by more than :data:`STORED_GROWTH` while the count did
    not grow; None otherwise (also with fewer than two counted samples). Pure.

    Data growing with no more snapshots to hold it: retention that no longer removes
    anything, a backup that now takes in much more than before, or something else
    writing to the destination."""
    counted = sorted((s for s in samples if s.snapshots is not None), key=lambda s: s.when)
    if len(counted) < 2 or counted[0].used <= 0:
        return None
    first, last = counted[0], counted[-1]
    assert first.snapshots is not None and last.snapshots is not None
    if last.used > first.used * (1 + STORED_GROWTH) and last.snapshots <= first.snapshots:
        return last.used / first.used - 1, first.snapshots, last.snapshots
    return None


def outliers(durations: list[tuple[float, float]]) -> list[tuple[float, float, float]]:
    """(started, duration, median) of the runs whose duration is over 3 MAD from the median. Pure."""
    if len(durations) < MIN_RUNS_FOR_OUTLIERS:
        return []
    values = [d for _, d in durations]
    median = statistics.median(values)
    mad = 1.4826 * statistics.median(abs(v - median) for v in values)  # ~ the standard deviation
    if mad == 0:
        return []
    return [(t, d, median) for t, d in durations if abs(d - median) > OUTLIER_MADS * mad]


@dataclass
class RepoMonth:
    name: str
    samples: int
    growth_per_day: float | None  # bytes/day, None below 7 samples
    forecast: str
    usage: list[tuple[float, int]] = field(default_factory=list)  # (when, used bytes), oldest first


@dataclass
class JobMonth:
    job: str
    runs: int
    success_rate: float | None
    days_covered: int  # days with a successful backup started
    median_duration: float | None
    last_median_duration: float | None
    statuses: dict[str, int] = field(default_factory=dict)  # ok / partial / failed runs
    unusual: list[tuple[float, float, float]] = field(default_factory=list)  # (started, duration, median)


@dataclass
class Anomaly:
    """A snapshot a run of the month recorded as tagged suspicious."""

    job: str
    snapshot: str
    when: float
    reasons: list[str]
    acknowledged: bool


@dataclass
class MonthlyReport:
    start: float
    end: float
    repositories: list[RepoMonth]
    jobs: list[JobMonth]
    recommendations: list[str] = field(default_factory=list)
    anomalies: list[Anomaly] = field(default_factory=list)
    protection: list[Protection] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        found = {"ok": 0, "partial": 0, "failed": 0}
        for j in self.jobs:
            for key, n in j.statuses.items():
                found[key] = found.get(key, 0) + n
        return found

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["protection"] = [p.as_dict() for p in self.protection]
        out["counts"] = self.counts()
        return out


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
        report.repositories.append(RepoMonth(name, fit.samples, fit.slope_per_day, fit.describe(),
                                             [(x.when, x.used) for x in samples]))  # fmt: skip
        if fit.days_until_full is not None and fit.days_until_full <= policy.full_warn_days:
            report.recommendations.append(f"add space to {name}: {fit.describe()}")
        outgrown = stored_outgrows_snapshots(samples)
        if outgrown is not None:
            growth, before, after = outgrown
            report.recommendations.append(
                f"{name}: stored data grew {growth:.0%} this month while its snapshots did not "
                f"({before} -> {after}): check its retention and what its backups now take in"
            )
    for name in config.jobs:
        window = [r for r in db.runs(name, limit=5000) if end - 2 * MONTH <= r.started < end]
        runs = [r for r in window if r.status != "running"]
        this, last = [r for r in runs if r.started >= start], [r for r in runs if r.started < start]
        ok = [r for r in this if r.status == "success"]
        days = {dt.datetime.fromtimestamp(r.started, dt.UTC).date() for r in ok}
        job = JobMonth(name, len(this), len(ok) / len(this) if this else None, len(days), _median(this),
                       _median(last), status_counts([r.status for r in this]),
                       outliers([(r.started, (r.ended or r.started) - r.started) for r in this]))  # fmt: skip
        report.anomalies += [Anomaly(name, x.snapshot, x.when, list(x.reasons), False)
                             for x in board.suspicions(this, set())]  # fmt: skip
        report.jobs.append(job)
        if (
            job.median_duration
            and job.last_median_duration
            and job.median_duration > (1 + DURATION_GROWTH) * job.last_median_duration
        ):
            growth = job.median_duration / job.last_median_duration - 1
            report.recommendations.append(f"{name}: median duration grew {growth:.0%} against last month")
    acked = AckLog(config.state.path).acknowledged(a.snapshot for a in report.anomalies)
    for a in report.anomalies:
        a.acknowledged = a.snapshot in acked
    for status in board.board(config, end, sample=False):
        report.recommendations.extend(f"{status.name}: {text}" for text in status.verdict.texts)
        report.protection.append(protection(status.verdict, status.facts))
    return report


def subject(report: MonthlyReport) -> str:
    return counts_text(report.counts()) + f"; {len(report.recommendations)} recommendation(s)"


def _growth(r: RepoMonth) -> str:
    if r.growth_per_day is None:
        return "-"
    return f"{'+' if r.growth_per_day >= 0 else ''}{size(r.growth_per_day)}/day"


def document(report: MonthlyReport, host: str = "") -> Document:
    repos = Table(("repository", "samples", "growth", "forecast"),
                  tuple((r.name, str(r.samples), _growth(r), r.forecast) for r in report.repositories),
                  numeric=(1, 2))  # fmt: skip
    charts = tuple(Chart(f"{r.name}: used space per day", "line", tuple(when(t)[5:10] for t, _ in r.usage),
                         (Series("used", tuple(float(u) for _, u in r.usage)),), "bytes")
                   for r in report.repositories if len(r.usage) > 1)  # fmt: skip
    jobs = Table(("job", "runs", "ok", "partial", "failed", "success", "days with a backup",
                  "median duration", "last month"),
                 tuple((j.job, str(j.runs), str(j.statuses.get("ok", 0)), str(j.statuses.get("partial", 0)),
                        str(j.statuses.get("failed", 0)), percent(j.success_rate), str(j.days_covered),
                        seconds(j.median_duration), seconds(j.last_median_duration)) for j in report.jobs),
                 numeric=(1, 2, 3, 4, 5, 6, 7, 8))  # fmt: skip
    anomalies = Table(("job", "snapshot", "when", "reasons", "state"),
                      tuple((a.job, a.snapshot[:8], when(a.when), "; ".join(a.reasons) or "-",
                             "acknowledged" if a.acknowledged else "unacknowledged")
                            for a in report.anomalies))  # fmt: skip
    odd = tuple((j.job, when(t), seconds(d), seconds(m)) for j in report.jobs for t, d, m in j.unusual)
    unusual = Table(("job", "started", "duration", "median"), odd, numeric=(2, 3))
    sections = (
        Section("Growth and capacity forecast", (repos,) if report.repositories else (), charts,
                empty="no repositories configured"),
        Section("Jobs", (jobs,) if report.jobs else (), empty="no jobs configured"),
        Section("Anomalies (snapshots tagged suspicious)", (anomalies,) if report.anomalies else (),
                empty="none this month"),
        Section(f"Unusual durations (over {OUTLIER_MADS:g} MAD from the job's median)",
                (unusual,) if unusual.rows else (), empty="none this month"),
        Section("Recommendations", items=tuple(report.recommendations), empty="none"),
        protection_section(report.protection, report.end),
    )  # fmt: skip
    return period_document("monthly", report, subject(report), sections, host)


def render_text(report: MonthlyReport) -> str:
    return render.text(document(report))


def render_json(report: MonthlyReport) -> str:
    return json.dumps(report.as_dict(), indent=2) + "\n"
