"""The status board: every configured job's verdict and the facts behind it, from the state database.

Gathers :class:`amber.ops.verdict.JobFacts` per job (runs, checks, drills,
copies recorded by runs, usage samples) and judges them. Reads only local
state; no repository is opened, so the board is cheap enough for every page view.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

from amber.engine.rule321 import CopyFacts, Replica, evaluate
from amber.ops.anomaly_acks import AckLog
from amber.ops.config.model import Config, JobConfig
from amber.ops.drills.history import DrillHistory, DrillRow
from amber.ops.reports.forecast import forecast
from amber.ops.reports.usage import UsageLog, month_of, sample_repositories
from amber.ops.run.scheduled_check import task as check_task
from amber.ops.schedule.calendar import next_after, parse_calendar
from amber.ops.state import RunRecord, StateDB
from amber.ops.verdict import CopiesFacts, DestinationFill, JobFacts, JobVerdict, Outcome, Suspicion, judge

RECENT_RUNS = 10  # runs read per job: enough to find the newest check and where the newest backup went


@dataclass
class JobStatus:
    name: str
    repository: str
    schedule: str | None
    verdict: JobVerdict
    facts: JobFacts
    last_run: RunRecord | None = None
    next_run: float | None = None
    running: bool = False
    destinations: list[DestinationFill] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The API shape (``/api/v1/status``); the run record's URL credentials are already masked."""
        return {
            "name": self.name, "repository": self.repository, "schedule": self.schedule,
            "verdict": self.verdict.verdict, "reasons": self.verdict.texts, "running": self.running,
            "last_run": self.last_run.as_dict() if self.last_run else None,
            "last_success": self.facts.last_success, "next_run": self.next_run,
            "suspicious": [{"snapshot": a.snapshot, "when": a.when, "reasons": list(a.reasons)}
                           for a in self.facts.anomalies if not a.acknowledged],
            "destinations": [
                {"name": d.name, "fill": d.fill,
                 "forecast": d.forecast.describe() if d.forecast else None,
                 "days_until_full": d.forecast.days_until_full if d.forecast else None}
                for d in self.destinations
            ],
        }  # fmt: skip


def schedule_times(schedule: str | None, now: float) -> tuple[float | None, float | None]:
    """(next run, interval between runs) of an OnCalendar schedule, both None without one."""
    if not schedule:
        return None, None
    try:
        cal = parse_calendar(schedule)
    except ValueError:
        return None, None
    first = next_after(cal, dt.datetime.fromtimestamp(now))
    second = next_after(cal, first) if first else None
    if first is None:
        return None, None
    return first.timestamp(), (second - first).total_seconds() if second else None


def _verification(runs: list[RunRecord]) -> Outcome | None:
    for run in runs:  # newest first
        for d in run.destinations:
            if d.step == "check" and d.status != "skipped":
                errors = d.details.get("errors", []) if isinstance(d.details, dict) else []
                detail = f"{len(errors)} error(s) in {d.name}" if errors else d.message
                return Outcome(run.ended or run.started, d.status == "success", detail)
    return None


def _copies(config: Config, job: JobConfig, runs: list[RunRecord]) -> CopiesFacts | None:
    """3-2-1-1-0 of the newest successful backup, from where the run put it."""
    latest = next((r for r in runs if r.status in ("success", "partial") and r.snapshot_ids), None)
    if latest is None or job.repository not in config.repositories:
        return None
    checks: dict[str, int] = {}
    for run in runs:
        for d in run.destinations:
            if d.step == "check" and d.status != "skipped" and d.name not in checks:
                checks[d.name] = 0 if d.status == "success" else 1
    holders = {d.name for d in latest.destinations if d.step in ("backup", "copy") and d.status == "success"}
    facts = []
    for name in sorted(holders):
        r = config.repositories.get(name)
        replica = Replica(name, r.kind, r.offsite, r.immutable, r.offline) if r else Replica(name)
        facts.append(CopyFacts(replica, checks.get(name)))
    v = evaluate(facts)
    return CopiesFacts(v.passed, tuple(v.missing), v.errors)


def suspicions(runs: list[RunRecord], acked: set[str]) -> list[Suspicion]:
    """Snapshots the runs' backup steps recorded as tagged suspicious, newest first."""
    out = []
    for run in runs:
        for d in run.destinations:
            anomaly = d.details.get("anomaly") if d.step == "backup" and isinstance(d.details, dict) else None
            if isinstance(anomaly, dict) and anomaly.get("verdict") == "suspicious" and d.snapshot_id:
                reasons = tuple(str(r) for r in anomaly.get("reasons", []))
                out.append(Suspicion(d.snapshot_id, run.started, reasons, d.snapshot_id in acked))
    return out


def _drill(drills: list[DrillRow], job: JobConfig) -> Outcome | None:
    for row in drills:  # newest first
        if row.job == job.name or (not row.job and row.repository == job.repository):
            return Outcome(row.ended, row.ok, "; ".join(row.failures[:2]) or row.status)
    return None


def _fills(usage: UsageLog, names: set[str], now: float) -> dict[str, DestinationFill]:
    out = {}
    for name in names:
        samples = month_of(usage, name, now)
        latest = samples[-1] if samples else None
        fill = latest.used / latest.total if latest and latest.total else None
        out[name] = DestinationFill(name, fill, forecast(samples, now) if samples else None)
    return out


@dataclass(frozen=True)
class _History:
    runs: list[RunRecord]  # newest first
    success: RunRecord | None
    checks: list[RunRecord]  # standalone checks (timers, Check now), recorded as job "check:NAME"
    acked: frozenset[str] = frozenset()  # acknowledged suspicious snapshot IDs


def job_status(config: Config, job: JobConfig, history: _History, drills: list[DrillRow],
               fills: dict[str, DestinationFill], now: float) -> JobStatus:  # fmt: skip
    """``drills``: newest first; ``fills``: per repository name."""
    runs, success = history.runs, history.success
    finished = [r for r in runs if r.status != "running"]
    checks = [r for r in history.checks if r.status != "running"]
    checked = sorted([*finished, *checks], key=lambda r: r.started, reverse=True)
    next_run, interval = schedule_times(job.schedule, now)
    destinations = [fills[name] for name in (job.repository, *job.mirrors)]
    facts = JobFacts(
        job=job.name, now=now, last_success=success.started if success else None,
        last_status=finished[0].status if finished else None, interval=interval,
        verification=_verification(checked), drill=_drill(drills, job),
        copies=_copies(config, job, checked), destinations=tuple(destinations),
        anomalies=tuple(suspicions(finished, set(history.acked))),
    )  # fmt: skip
    return JobStatus(job.name, job.repository, job.schedule, judge(facts), facts,
                     runs[0] if runs else None, next_run, bool(runs and runs[0].status == "running"),
                     destinations)  # fmt: skip


def board(config: Config, now: float | None = None, sample: bool = True) -> list[JobStatus]:
    """Every job's status, in config order; ``sample`` records today's local repository usage first."""
    now = time.time() if now is None else now
    path = config.state.path
    db, usage = StateDB(path), UsageLog(path)
    if sample:
        sample_repositories(config, usage, now)
    drills = DrillHistory(path).recent(limit=max(100, 5 * len(config.jobs)))  # newest drills cover every job
    fills = _fills(usage, {n for job in config.jobs.values() for n in (job.repository, *job.mirrors)}, now)
    names = list(config.jobs)
    recent = db.recent_by_job(names, RECENT_RUNS)
    checks = db.recent_by_job([check_task(n) for n in names], 5)
    flagged = [s.snapshot for runs, _ in recent.values() for s in suspicions(runs, set())]
    acked = frozenset(AckLog(path).acknowledged(flagged))
    return [job_status(config, job, _History(*recent[job.name], checks[check_task(job.name)][0], acked),
                       drills, fills, now) for job in config.jobs.values()]  # fmt: skip


def job_runs(config: Config, name: str, limit: int = 100) -> list[RunRecord]:
    config.job(name)  # ConfigError for an unknown job
    return StateDB(config.state.path).runs(name, limit=limit)
