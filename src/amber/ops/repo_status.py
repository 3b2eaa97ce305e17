"""One configured repository at a glance, for the dashboard's repository page: its snapshots, its size
over time with the capacity forecast, its last check, and the copies that go to or from it.

Size and checks come from the state database; snapshots from the repository
itself, opened read-only without a lock and without its index (only the
snapshot objects are read).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from amber.errors import AmberError
from amber.ops.config.model import Config
from amber.ops.reports.forecast import Forecast, Sample, forecast
from amber.ops.reports.usage import UsageLog
from amber.ops.run.fleet import GLANCE, unlocated
from amber.ops.run.scheduled_check import task as check_task
from amber.ops.run.steps import Repositories
from amber.ops.state import StateDB
from amber.redact import redact
from amber.services import session
from amber.services.context import OperationContext

SNAPSHOTS_SHOWN = 50
RUNS_READ = 50  # per job: the newest check and copy steps are in the last few runs
YEAR = 365 * 86400.0


@dataclass(frozen=True)
class SnapshotRow:
    id: str
    time: str
    host: str
    paths: list[str]
    size: int  # the snapshot's total bytes
    tags: list[str]


@dataclass(frozen=True)
class StepRow:
    """The newest step of one kind between this repository and another, from run records."""

    job: str
    step: str  # check | copy
    other: str  # the other repository of a copy ("" for a check)
    when: float
    status: str
    message: str = ""


@dataclass
class RepoStatus:
    name: str
    kind: str
    offline: bool
    samples: list[Sample] = field(default_factory=list)  # a year of daily usage, oldest first
    forecast: Forecast | None = None
    snapshots: list[SnapshotRow] = field(default_factory=list)  # newest first
    snapshot_count: int = 0
    problems: list[str] = field(default_factory=list)
    checks: list[StepRow] = field(default_factory=list)
    copies: list[StepRow] = field(default_factory=list)
    backed_up_by: list[str] = field(default_factory=list)  # jobs whose main repository this is
    mirror_of: list[str] = field(default_factory=list)  # jobs that copy here


def repository_status(config: Config, name: str, passwords: session.PasswordSource,
                      now: float | None = None) -> RepoStatus:  # fmt: skip
    now = time.time() if now is None else now
    settings = config.repositories[name]  # KeyError: the caller checks the name
    status = RepoStatus(name, settings.kind, settings.offline)
    status.backed_up_by = [j.name for j in config.jobs.values() if j.repository == name]
    status.mirror_of = [j.name for j in config.jobs.values() if name in j.mirrors]
    status.samples = UsageLog(config.state.path).samples(name, now - YEAR)
    recent = [s for s in status.samples if s.when >= now - 31 * 86400]
    status.forecast = forecast(recent, now) if recent else None
    _steps(config, name, status)
    _snapshots(config, name, passwords, status)
    return status


def _steps(config: Config, name: str, status: RepoStatus) -> None:
    db = StateDB(config.state.path)
    seen: set[tuple[str, str, str]] = set()
    jobs = [*status.backed_up_by, *status.mirror_of]
    runs = [r for job in dict.fromkeys(jobs) for r in db.runs(job, limit=RUNS_READ)]
    runs += [r for job in config.jobs for r in db.runs(check_task(job), limit=20)]
    for run in sorted(runs, key=lambda r: r.started, reverse=True):
        for d in run.destinations:
            if d.step == "check" and d.name == name and d.status != "skipped":
                key = (run.job, "check", "")
                if key not in seen:
                    seen.add(key)
                    status.checks.append(StepRow(run.job, "check", "", run.ended or run.started, d.status,
                                                 redact(d.message)))  # fmt: skip
            elif d.step == "copy" and d.status != "skipped":
                job = config.jobs.get(run.job)
                source = job.repository if job else ""
                if name not in (d.name, source):
                    continue
                key = (run.job, "copy", d.name)
                if key not in seen:
                    seen.add(key)
                    other = d.name if source == name else source
                    status.copies.append(StepRow(run.job, "copy", other, run.ended or run.started, d.status,
                                                 redact(d.message)))  # fmt: skip


def _snapshots(config: Config, name: str, passwords: session.PasswordSource, status: RepoStatus) -> None:
    repos = Repositories(config, passwords, OperationContext(GLANCE))
    settings = config.repositories[name]
    if settings.offline and not repos.present(name):
        status.problems.append("offline repository is not connected")
        return
    errors: list[tuple[str, AmberError]] = []
    try:
        with session.opened(settings.url, repos.passwords(name), lock=False, options=repos.options(name),
                            ctx=repos.ctx, read_only=True, load_index=False) as repo:  # fmt: skip
            snaps = repo.snapshots(errors)
    except AmberError as exc:
        status.problems.append(unlocated(exc.message, settings.url, name))
        return
    status.snapshot_count = len(snaps)
    newest = sorted(snaps.items(), key=lambda item: item[1].datetime, reverse=True)[:SNAPSHOTS_SHOWN]
    status.snapshots = [
        SnapshotRow(sid[:8], s.datetime.astimezone().strftime("%Y-%m-%d %H:%M"), s.hostname, list(s.paths),
                    s.summary.total_bytes, list(s.tags))
        for sid, s in newest
    ]  # fmt: skip
    status.problems += [f"snapshot {sid[:8]}: {redact(exc.message)}" for sid, exc in errors]
