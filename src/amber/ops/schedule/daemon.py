"""`amber daemon`: a built-in scheduler for hosts without systemd.

Every ``tick`` seconds it runs the jobs whose OnCalendar schedule had an
occurrence since the job's stamp in the state database. Stamps persist, so
occurrences missed while the daemon was down are caught up once at start
(systemd's Persistent=true). A job seen for the first time starts its clock
then, and waits for its next occurrence. Extensions (the /metrics HTTP
server) start and stop with the daemon and hear every tick.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from amber.errors import AmberError
from amber.ops.config.model import Config
from amber.ops.run import job as run_service
from amber.ops.schedule.calendar import Calendar, next_after, parse_calendar
from amber.ops.state import StateDB


class DaemonExtension(Protocol):
    def start(self, config: Config) -> None: ...

    def tick(self, config: Config) -> None: ...

    def stop(self) -> None: ...


@dataclass
class DaemonOptions:
    run: run_service.RunOptions = field(default_factory=run_service.RunOptions)
    tick: float = 30.0  # seconds between looks at the clock
    once: bool = False  # one pass (catch-up included), then return
    stop: threading.Event = field(default_factory=threading.Event)
    extensions: Sequence[DaemonExtension] = ()
    now: Callable[[], dt.datetime] = dt.datetime.now  # local, naive: OnCalendar is local time


def task(job: str) -> str:
    return f"run:{job}"


def due_jobs(config: Config, db: StateDB, now: dt.datetime) -> list[str]:
    """Jobs due at ``now``; stamps a first-seen job with ``now`` so it waits for its next occurrence."""
    due = []
    for job in config.jobs.values():
        if not job.schedule:
            continue
        cal: Calendar = parse_calendar(job.schedule)
        stamp = db.stamp(task(job.name))
        if stamp is None:
            db.set_stamp(task(job.name), now.timestamp())
            continue
        upcoming = next_after(cal, dt.datetime.fromtimestamp(stamp))
        if upcoming is not None and upcoming <= now:
            due.append(job.name)
    return due


def one_pass(config: Config, db: StateDB, options: DaemonOptions) -> list[run_service.JobResult]:
    results: list[run_service.JobResult] = []
    for name in due_jobs(config, db, options.now()):
        if options.stop.is_set():
            break
        db.set_stamp(task(name), options.now().timestamp())  # before running: a crash must not loop
        options.run.context.events.notice("note", f"daemon: starting job {name}")
        try:
            results += run_service.run_jobs(config, [name], options.run)
        except AmberError as exc:  # one bad job must not stop the scheduler
            options.run.context.events.notice("note", f"daemon: job {name}: {exc.message}")
    return results


def serve(config: Config, options: DaemonOptions) -> list[run_service.JobResult]:
    """Run until ``options.stop`` is set (or one pass with ``once``); returns the job results."""
    db = StateDB(config.state.path)
    results: list[run_service.JobResult] = []
    started: list[DaemonExtension] = []
    try:
        for ext in options.extensions:
            ext.start(config)
            started.append(ext)
        while not options.stop.is_set():
            results += one_pass(config, db, options)
            for ext in started:
                ext.tick(config)
            if options.once:
                break
            options.stop.wait(options.tick)
    finally:
        for ext in reversed(started):
            ext.stop()
    return results
