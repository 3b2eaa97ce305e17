"""Standalone checks on each job's ``check.schedule``, for `amber daemon`.

`amber run` checks after every backup; a job may also ask for a check on its
own calendar (say, a weekly read-data subset). Each due job's primary and
mirrors are checked; the result is stored as a run of ``check:JOB`` (so a
check never counts as a backup for the stale-job alert) whose destinations
carry step ``check`` (what `status --copies` reads), and damage is reported
to the operation's sink as an ``integrity`` run event.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

from amber.events import EventSink, RunEvent
from amber.ops.config.model import Config, JobConfig
from amber.ops.run import steps as run_steps
from amber.ops.schedule.calendar import next_after, parse_calendar
from amber.ops.state import Destination, RunRecord, StateDB
from amber.services.context import OperationContext, OperationRecord
from amber.services.operations import RUNNING
from amber.services.session import PasswordSource

INTEGRITY_ERRORS = ("CheckFailed", "IntegrityError")


def task(job: str) -> str:
    return f"check:{job}"


def due_checks(config: Config, db: StateDB, now: dt.datetime) -> list[JobConfig]:
    """Jobs whose check schedule fired since their stamp; a first-seen job waits for its next occurrence."""
    due = []
    for job in config.jobs.values():
        if not (job.check.enabled and job.check.schedule):
            continue
        stamp = db.stamp(task(job.name))
        if stamp is None:
            db.set_stamp(task(job.name), now.timestamp())
            continue
        upcoming = next_after(parse_calendar(job.check.schedule), dt.datetime.fromtimestamp(stamp))
        if upcoming is not None and upcoming <= now:
            due.append(job)
    return due


def check_job(
    config: Config, job: JobConfig, passwords: PasswordSource, ctx: OperationContext | None = None
) -> RunRecord:
    """Check the job's primary and mirrors; an offline mirror that is not connected is skipped.

    Damage is an ``integrity`` run event on ``ctx``'s sink."""
    ctx = ctx or OperationContext()
    db = StateDB(config.state.path)
    run = db.begin(task(job.name))
    repos = run_steps.Repositories(config, passwords, ctx)
    for name in (job.repository, *job.mirrors):
        if repos.settings(name).offline and not repos.present(name):
            offline = "offline repository is not connected"
            run.destinations.append(Destination(name, "check", "skipped", offline))
            continue
        dest = run_steps.check(repos, job, name)
        run.destinations.append(dest)
        if dest.status == "failed":
            run.errors.append(f"check on {name}: {dest.message}")
            if dest.details.get("error") in INTEGRITY_ERRORS:
                ctx.events.run_event(RunEvent("integrity", job.name, dest.message, name, {"step": "check"}))
    run.status = "failed" if run.errors else "success"
    run.ended = time.time()
    db.finish(run)
    return run


def check_jobs(
    config: Config, names: list[str], passwords: PasswordSource, ctx: OperationContext | None = None
) -> list[RunRecord]:
    """`amber run --check-only`: check the named jobs (all with checks enabled when none is named)."""
    jobs = [config.job(n) for n in names] if names else [j for j in config.jobs.values() if j.check.enabled]
    return [check_job(config, job, passwords, ctx) for job in jobs]


class CheckExtension:
    """A daemon extension that runs due scheduled checks on every tick."""

    def __init__(
        self, passwords: PasswordSource, note: Callable[[str], None] = lambda _m: None,
        observer_for: Callable[[Config], EventSink] | None = None,
    ) -> None:  # fmt: skip
        self.passwords = passwords
        self.note = note
        self.observer_for = observer_for

    def start(self, config: Config) -> None:
        return None

    def tick(self, config: Config) -> None:
        db = StateDB(config.state.path)
        for job in due_checks(config, db, dt.datetime.now()):
            db.set_stamp(task(job.name), time.time())  # before running: a crash must not loop
            ctx = OperationContext(record=OperationRecord("check", [job.name]))
            if self.observer_for:
                ctx.events.subscribe(self.observer_for(config))
            with RUNNING.track(ctx):
                run = check_job(config, job, self.passwords, ctx)
            self.note(f"daemon: scheduled check {job.name}: {run.status}")

    def stop(self) -> None:
        return None
