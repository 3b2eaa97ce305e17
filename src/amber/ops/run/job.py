"""`amber run`: the configured jobs, unattended.

Per job, under a per-job lock: before hooks -> backup -> copy to mirrors ->
forget/prune per policy -> Object Lock extension (S3 repositories with lock
options) -> sampled check -> after hooks (on_failure hooks when
the run failed). Each run is recorded in the state database, and observers
(notify, metrics) hear start, the outcome, and integrity problems. Each job is
one operation (``services.context``): its own backend options (the command
line's, then ``[limits]``), a cancel signal that stops with the caller's, and
its own audit record.
A failed mirror does not stop the other destinations; a failed backup stops
the job, since there is nothing to copy. What a job reports (run events, the backup's
progress, "note" lines for each step's result, retry notices) goes to its context's
sink: its own subscribers, then the caller's (alerts, the CLI, the dashboard subscribe
there); and the job's context is
registered in ``services.operations.RUNNING`` while it runs, for a front end that
watches every operation of the process. A signal stops the job at its next
safe point (a second one at once): the run is recorded as ``interrupted``, the
failure alert goes out, and no further job starts. A lapsed lease fails the job.
"""

from __future__ import annotations

import dataclasses
import socket
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from amber import errors
from amber.childenv import child_env
from amber.engine.changedpaths import ChangedPaths
from amber.errors import (
    AmberError,
    HookFailed,
    Interrupted,
    JobRunning,
    PartialBackup,
    StateError,
    SuspiciousBackup,
)
from amber.events import RunEvent, Subscriber
from amber.ops import limits as limits_service
from amber.ops.config.model import Config, JobConfig
from amber.ops.limits import Limits
from amber.ops.run import fleet, progress_log
from amber.ops.run import steps as run_steps
from amber.ops.run.steps import Repositories
from amber.ops.state import Destination, RunRecord, StateDB, job_lock
from amber.services import session
from amber.services.context import OperationContext
from amber.services.operations import RUNNING
from amber.storage.url import BackendOptions

_INTEGRITY_ERRORS = ("CheckFailed", "IntegrityError")
RepositoriesFactory = Callable[[Config, session.PasswordSource, OperationContext], Repositories]


@dataclass
class RunOptions:
    limits: Limits = field(default_factory=Limits)
    passwords: session.PasswordSource = field(default_factory=session.PasswordSource)
    check: bool = True  # False skips the sampled check (--no-check)
    context: OperationContext = field(default_factory=OperationContext)  # the caller's; subscribe to its sink
    # `amber watch`: the paths that changed since ``parent`` (its last snapshot); only they are walked
    changes: ChangedPaths | None = None
    parent: str | None = None
    # how each job opens its repositories (`amber watch`: ones it keeps open between runs)
    repositories: RepositoriesFactory = Repositories


@dataclass
class JobResult:
    job: str
    status: str  # success | partial | failed | interrupted | running (another process has the job)
    record: RunRecord | None = None
    error: AmberError | None = None


def run_jobs(config: Config, names: Sequence[str], options: RunOptions) -> list[JobResult]:
    """Run ``names`` (all jobs when empty) one after another."""
    jobs = [config.job(n) for n in names] if names else list(config.jobs.values())
    if not jobs:
        raise AmberError(f"{config.source}: no jobs configured")
    for line in limits_service.apply(options.limits):  # nice/ionice: per process by nature
        options.context.events.notice("limits", line)
    db = StateDB(config.state.path)
    options.context.cancel.watch()  # checked between jobs and between steps
    results = []
    for job in jobs:
        if options.context.cancel.cancelled:
            break  # stopped: no further job starts
        ctx = options.context.child("job", [job.name], job_options(options), job.repository)
        repos = options.repositories(config, options.passwords, ctx)
        try:
            with (
                RUNNING.track(ctx),
                job_lock(config.state_dir, job.name),
                progress_log.recorded(config.state.path, job.name, ctx.events),
            ):
                result = _run_job(job, repos, db, options)
        except JobRunning as exc:
            ctx.events.notice("note", exc.message)
            result = JobResult(job.name, "running", error=exc)
        except BaseException as exc:
            ctx.finish_with(exc)
            raise
        ctx.finish_with(result.error)
        results.append(result)
    return results


def job_options(options: RunOptions) -> BackendOptions:
    """The caller's backend options; [limits] limit_upload/limit_download unless given on the command line."""
    base = options.context.options
    up = base.limit_upload_kib or options.limits.limit_upload or None
    down = base.limit_download_kib or options.limits.limit_download or None
    return dataclasses.replace(base, limit_upload_kib=up, limit_download_kib=down)


def standard_observer(config: Config, note: Callable[[str], None]) -> Subscriber:
    """Notifications, healthchecks pings and capacity alerts, as a subscriber of the run's events.

    A failing subscriber only becomes a "subscriber" notice (``amber.events``)."""
    from amber.ops.alerting.notify import AlertObserver  # apprise is slow to import: only when running

    def warn(message: str) -> None:
        if message:
            note(message)

    return AlertObserver(config, warn)


def interrupted_error(results: Sequence[JobResult]) -> AmberError | None:
    """The signal that stopped a job (its exit code: 143, 130, 129), or None; the daemon exits with it."""
    stopped = [r for r in results if r.status == "interrupted" and r.error is not None]
    if not stopped or stopped[0].error is None:
        return None
    err = stopped[0].error
    return type(err)(f"job {stopped[0].job} {err.message}")


def worst_error(results: Sequence[JobResult]) -> AmberError | None:
    """The error `amber run` exits with: interrupted > failed > already running > partial > none."""
    stopped = interrupted_error(results)
    if stopped is not None:
        return stopped
    failed = [r for r in results if r.status == "failed"]
    if len(failed) == 1 and failed[0].error is not None:
        err = failed[0].error
        return type(err)(f"job {failed[0].job} failed: {err.message}")
    if failed:
        return AmberError(f"{len(failed)} jobs failed: {', '.join(r.job for r in failed)}")
    running = [r for r in results if r.status == "running"]
    if running:
        return running[0].error
    suspicious = [r.job for r in results if isinstance(r.error, SuspiciousBackup)]
    if suspicious:
        names = ", ".join(suspicious)
        return SuspiciousBackup(f"suspicious backup in job(s) {names}: see `amber anomaly list`")
    partial = [r.job for r in results if r.status == "partial"]
    if partial:
        return PartialBackup(f"partial backup in job(s) {', '.join(partial)}: some files could not be read")
    return None


class _Run:
    """The mutable state of one job's run."""

    def __init__(self, job: JobConfig, record: RunRecord, options: RunOptions, ctx: OperationContext) -> None:
        self.job = job
        self.record = record
        self.options = options
        self.events = ctx.events  # the job's sink
        self.error: AmberError | None = None
        self.suspicious: SuspiciousBackup | None = None  # the snapshot was written; the job goes on

    def fail(self, exc: AmberError) -> None:
        self.record.errors.append(exc.message)
        self.error = self.error or exc

    def add(self, dest: Destination) -> Destination:
        """Record a step's result; a step stopped by a signal stops the job (raises Interrupted)."""
        self.record.destinations.append(dest)
        self.events.notice("note", f"{self.job.name}: {dest.step} {dest.name}: {dest.status}"
                           + (f" ({dest.message})" if dest.message else ""))  # fmt: skip
        if dest.status == "failed":
            error = _error_class(dest)
            if issubclass(error, Interrupted):
                raise error(dest.message)
            self.fail(error(f"{dest.step} on {dest.name}: {dest.message}"))
            if dest.details.get("error") in _INTEGRITY_ERRORS:
                self.events.run_event(RunEvent("integrity", self.job.name, dest.message, dest.name,
                                               {"step": dest.step, **dest.details}))  # fmt: skip
        return dest


def _error_class(dest: Destination) -> type[AmberError]:
    """The amber error class a failed step reported, so the exit code stays precise."""
    cls = getattr(errors, str(dest.details.get("error", "")), None)
    return cls if isinstance(cls, type) and issubclass(cls, AmberError) else AmberError


def _run_job(job: JobConfig, repos: Repositories, db: StateDB, options: RunOptions) -> JobResult:
    record = db.begin(job.name, socket.gethostname())
    run = _Run(job, record, options, repos.ctx)
    run.events.run_event(RunEvent("start", job.name, f"job {job.name} started", job.repository))
    try:
        _pipeline(run, repos, options)
    except Interrupted as exc:  # a signal: stopped at a safe point; record it and alert
        return _interrupted(db, run, exc)
    except KeyboardInterrupt:  # a second signal: stopped at once; still recorded and alerted
        reason = repos.ctx.cancel.reason
        first = reason if isinstance(reason, Interrupted) else Interrupted()
        _interrupted(db, run, type(first)(f"{first.message}, at once"))
        raise
    except BaseException as exc:  # a bug: the record must still say so
        run.fail(exc if isinstance(exc, AmberError) else AmberError(f"{type(exc).__name__}: {exc}"))
        record.status = "failed"
        _finish(db, run)
        raise
    backup_dest = next((d for d in record.destinations if d.step == "backup"), None)
    if run.error is not None:
        record.status = "failed"
    else:
        record.status = "partial" if backup_dest and backup_dest.status == "partial" else "success"
    hooks = job.hooks.on_failure if record.status == "failed" else job.hooks.after
    try:
        _hooks(run, hooks, "after" if record.status != "failed" else "on_failure")
    except HookFailed as exc:
        run.fail(exc)
        record.status = "failed"
    _finish(db, run)
    # the fleet view: every host's runs
    fleet.publish_run(repos, job, db, record, lambda line: run.events.notice("note", line))
    kind = {"success": "success", "partial": "partial", "failed": "failure"}[record.status]
    message = f"job {job.name}: {record.status}" + (f": {record.errors[0]}" if record.errors else "")
    run.events.run_event(RunEvent(kind, job.name, message, job.repository, record.as_dict()))
    return JobResult(job.name, record.status, record, run.error or run.suspicious)


def _interrupted(db: StateDB, run: _Run, exc: Interrupted) -> JobResult:
    """Record the run as interrupted and send the failure alert; on_failure hooks do not run."""
    record = run.record
    record.errors.append(exc.message)
    record.status = "interrupted"
    _finish(db, run)
    message = f"job {run.job.name}: interrupted: {exc.message}"
    run.events.run_event(RunEvent("failure", run.job.name, message, run.job.repository, record.as_dict()))
    return JobResult(run.job.name, "interrupted", record, exc)


def _finish(db: StateDB, run: _Run) -> None:
    try:
        db.finish(run.record)
    except StateError as exc:  # the backup itself is safe; say so, don't hide the outcome
        run.events.notice("note", f"could not record the run: {exc.message}")


def _pipeline(run: _Run, repos: Repositories, options: RunOptions) -> None:
    job, record = run.job, run.record
    try:
        _hooks(run, job.hooks.before, "before")
    except HookFailed as exc:
        run.fail(exc)
        return
    _step(run, "backup", job.repository)
    dest, error = run_steps.backup(repos, job, options.limits, lambda line: run.events.notice("note", line),
                                   run_steps.Since(options.parent, options.changes))  # fmt: skip
    run.add(dest)
    if error is not None:
        run.error = error  # keep the original class: its exit code is the most precise
        return
    record.snapshot_ids.append(dest.snapshot_id)
    _alert_if_suspicious(run, dest)
    record.files = int(dest.details.get("files", 0))
    record.bytes_added = int(dest.details.get("data_added_stored", 0))
    reachable = [job.repository]
    for mirror in job.mirrors:
        if _stopped(repos):
            return
        if repos.settings(mirror).offline and not repos.present(mirror):
            run.add(Destination(mirror, "copy", "skipped", "offline repository is not connected"))
            continue
        _step(run, "copy", mirror)
        if run.add(run_steps.copy(repos, job, mirror, dest.snapshot_id)).status != "failed":
            reachable.append(mirror)
    if job.retention:
        for name in reachable:
            if _stopped(repos):
                return
            _step(run, "retention", name)
            run.add(run_steps.retention(repos, job, name))
    for name in reachable:  # after forget/prune: only what is still referenced stays locked longer
        if repos.object_locked(name) and not _stopped(repos):
            _step(run, "object-lock", name)
            run.add(run_steps.extend_retention(repos, name))
    if job.check.enabled and options.check:
        for name in reachable:
            if _stopped(repos):
                return
            _step(run, "check", name)
            run.add(run_steps.check(repos, job, name))


def _step(run: _Run, step: str, repository: str) -> None:
    """A "step" notice: the progress that follows is this step's (the dashboard counts the backup's)."""
    run.events.notice("step", f"{step} {repository}")


def _alert_if_suspicious(run: _Run, dest: Destination) -> None:
    """A snapshot tagged suspicious: an ``anomaly`` alert, and the run exits 33 (SuspiciousBackup)."""
    anomaly = dest.details.get("anomaly") or {}
    if anomaly.get("verdict") != "suspicious":
        return
    reasons = "; ".join(anomaly.get("reasons", []))
    run.suspicious = SuspiciousBackup(f"snapshot {dest.snapshot_id[:8]} tagged suspicious: {reasons}")
    run.record.errors.append(run.suspicious.message)
    details = {"snapshot": dest.snapshot_id, "reasons": anomaly.get("reasons", []),
               "top_dirs": anomaly.get("top_dirs", []), "examples": anomaly.get("examples", [])}  # fmt: skip
    message = f"job {run.job.name}: {run.suspicious.message}"
    run.events.run_event(RunEvent("anomaly", run.job.name, message, dest.name, details))


def _stopped(repos: Repositories) -> bool:
    """Before a step: a signal raises Interrupted (the job is recorded as interrupted); after a
    lapsed lease the job ends as failed (the step that lost it recorded why)."""
    reason = repos.ctx.cancel.reason
    if isinstance(reason, Interrupted):
        repos.ctx.cancel.check()
    return reason is not None


def _hooks(run: _Run, commands: Sequence[str], phase: str) -> None:
    if not commands:
        return
    snap = run.record.snapshot_ids[-1] if run.record.snapshot_ids else ""
    error = run.record.errors[0] if run.record.errors else ""
    env = child_env({"AMBER_JOB": run.job.name, "AMBER_HOOK": phase, "AMBER_SNAPSHOT": snap,
                     "AMBER_STATUS": run.record.status, "AMBER_ERROR": error,
                     "AMBER_REPOSITORY": run.job.repository})  # fmt: skip
    for command in commands:
        run.events.notice("note", f"{run.job.name}: {phase} hook: {command}")
        try:
            code = subprocess.run(command, shell=True, env=env, stdout=2, check=False).returncode
        except OSError as exc:
            raise HookFailed(f"{phase} hook {command!r} could not start: {exc.strerror}") from exc
        if code != 0:
            raise HookFailed(f"{phase} hook {command!r} exited with status {code}")
