"""`amber watch JOB`: snapshots of a job's paths within ``watch_interval`` of every change.

Watches start first, then a full walk; afterwards each run walks only what
inotify marked since the watcher's previous snapshot (its explicit parent) and
reuses every other subtree (engine/changedpaths.py). Each snapshot goes through
the job machinery of `amber run` (ops/run/job.py): the job lock, hooks, mirrors,
retention, the check, the state database, alerts and the audit log behave as
for any run; the repositories of the backup and the copy stay open between runs
(ops/watch/kept.py), so a run does not load the whole index again. Timing is
ops/watch/plan.py; the RPO achieved per snapshot goes to the state database
(ops/watch/history.py) and from there to the metrics.

A signal stops the watcher: between runs at once, during a run at the run's
next safe point (recorded as interrupted); it then raises the signal's error
(143 for SIGTERM). Changes made while no watcher runs are found by the full
walk at the next start.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from amber.engine.changedpaths import ChangedPaths, SubtreeCounter
from amber.engine.patterns import PathMatcher, read_exclude_files
from amber.errors import AmberError, JobRunning, UsageError
from amber.ops import limits as limits_service
from amber.ops.config.model import Config, JobConfig
from amber.ops.run import job as run_service
from amber.ops.state import job_lock
from amber.ops.watch.history import RpoRow, WatchHistory
from amber.ops.watch.inotify import Excluded, TreeWatcher, WatchLimit
from amber.ops.watch.kept import KeptRepositories
from amber.ops.watch.plan import WatchPlan
from amber.storage.url import parse_location


@dataclass
class WatchOptions:
    run: run_service.RunOptions = field(default_factory=run_service.RunOptions)
    max_watches: int | None = None  # at most this many directory watches (below the kernel's limit)
    clock: Callable[[], float] = time.time


@dataclass
class WatchSummary:
    snapshots: int = 0
    failed: int = 0


def check_watchable(job: JobConfig) -> None:
    if job.stdin_command or job.databases or job.snapshot or not job.paths:
        raise UsageError(f"job {job.name}: watch protects a job's paths; it cannot watch stdin_command, "
                         "databases or a filesystem snapshot (give those a scheduled job)")  # fmt: skip


def own_directories(config: Config, job: JobConfig) -> list[bytes]:
    """Where amber itself writes (local repositories, state, caches): never a reason for a snapshot."""
    dirs = [config.state_dir]
    for name in (job.repository, *job.mirrors):
        loc = parse_location(config.repositories[name].url)
        if loc.scheme == "local":
            dirs.append(loc.path)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    dirs.append(os.path.join(cache, "amber"))
    return [os.fsencode(os.path.abspath(d)).rstrip(b"/") for d in dirs]


def excluded_by(config: Config, job: JobConfig) -> Excluded:
    matcher = PathMatcher(list(job.exclude) + read_exclude_files(job.exclude_files), job.exclude_caches)
    test = matcher.test(lambda path: path)
    own = own_directories(config, job)

    def excluded(path: bytes, name: bytes) -> bool:
        if any(path == d or path.startswith(d + b"/") for d in own):
            return True
        return test is not None and test(path, name)

    return excluded


def watch_job(config: Config, name: str, options: WatchOptions) -> WatchSummary:
    """Watch job ``name`` until the operation is cancelled; then raise the cancel's reason."""
    job = config.job(name)
    check_watchable(job)
    try:
        with job_lock(config.state_dir, f"watch:{name}"):
            return _Watcher(config, job, options).loop()
    except JobRunning as exc:
        holder = exc.message.split("(pid ", 1)[-1].split(")", 1)[0]
        raise JobRunning(f"job {name} is already being watched (pid {holder})") from None


class _Watcher:
    def __init__(self, config: Config, job: JobConfig, options: WatchOptions) -> None:
        self.config, self.job = config, job
        events = options.run.context.events
        self.note: Callable[[str], None] = lambda line: events.notice("note", line)
        for line in limits_service.apply(options.run.limits):  # process-wide: once, not every run
            self.note(f"limits: {line}")
        applied = dataclasses.replace(options.run.limits, nice=None, ionice_class=None, ionice_level=None)
        self.kept = KeptRepositories()  # opened once: each run pays for what changed (ops/watch/kept.py)
        run = dataclasses.replace(options.run, limits=applied, repositories=self.kept)
        self.options = dataclasses.replace(options, run=run)
        self.cancel = options.run.context.cancel.watch()
        self.clock = options.clock
        self.plan = WatchPlan(job.watch_interval, job.watch_rescan)
        self.counter = SubtreeCounter()
        self.changes = ChangedPaths(self.counter)
        self.parent: str | None = None
        self.history = WatchHistory(config.state.path)
        self.summary = WatchSummary()
        self.tree: TreeWatcher | None = None
        self._wake_r, self._wake_w = os.pipe()
        self.cancel.on_cancel(self._wake)
        try:
            self.tree = TreeWatcher(job.paths, excluded_by(config, job), job.one_file_system,
                                    options.max_watches)  # fmt: skip
            n = self.tree.watches
            self.note(f"watch {job.name}: watching {n} director{'y' if n == 1 else 'ies'}; a snapshot "
                      f"within {job.watch_interval:g}s of a change")  # fmt: skip
        except WatchLimit as exc:
            self._periodic(str(exc))

    def _wake(self) -> None:
        if self._wake_w < 0:
            return  # closed: the number may belong to another file by now
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")  # may run in a signal handler: nothing else

    def _periodic(self, why: str) -> None:
        if self.tree is not None:
            self.tree.close()
            self.tree = None
        self.plan.periodic = True
        self.plan.lost_events(self.clock())
        self.note(f"watch {self.job.name}: {why}; falling back to a full scan every "
                  f"{self.job.watch_interval:g}s (raise fs.inotify.max_user_watches to watch "
                  "every directory)")  # fmt: skip

    def loop(self) -> WatchSummary:
        try:
            while not self.cancel.cancelled:
                now = self.clock()
                due = self.plan.next_run()
                if due > now:
                    self._wait(due - now)
                    self._collect(self.clock())
                    continue
                self._run(now)
        finally:
            self.kept.close()
            if self.tree is not None:
                self.tree.close()
            wake_w, self._wake_w = self._wake_w, -1
            os.close(wake_w)
            os.close(self._wake_r)
        if len(self.changes) or self.plan.pending_since is not None:
            self.note(f"watch {self.job.name}: stopped with {len(self.changes)} changed path(s) not yet "
                      "in a snapshot; the next start walks everything")  # fmt: skip
        self.cancel.check()
        return self.summary

    def _wait(self, seconds: float) -> None:
        if self.tree is not None:
            self.tree.wait(seconds, self._wake_r)
        else:
            self.cancel.wait(seconds)

    def _collect(self, when: float) -> None:
        """Mark what the queued events name; ``when``: the earliest they can have happened."""
        if self.tree is None:
            return
        before = len(self.changes)
        try:
            result = self.tree.read(self.changes)
        except WatchLimit as exc:
            self.plan.changed(when)
            self._periodic(str(exc))
            return
        if result.overflow:
            self.note(f"watch {self.job.name}: inotify's event queue overflowed; walking everything")
            self.plan.lost_events(when)
        if len(self.changes) > before:
            self.plan.changed(when)

    def _run(self, now: float) -> None:
        self._collect(now)
        full = self.plan.full_at(now)
        batch, self.changes = self.changes, ChangedPaths(self.counter)
        first = self.plan.started(now, full)
        what = "walking everything" if full else f"{len(batch)} changed path(s)"
        self.note(f"watch {self.job.name}: snapshot, {what}")
        run = dataclasses.replace(self.options.run, changes=None if full else batch,
                                  parent=None if full else self.parent)  # fmt: skip
        try:
            results = run_service.run_jobs(self.config, [self.job.name], run)
        except AmberError as exc:  # e.g. the state database: a watcher keeps going
            self.note(f"watch {self.job.name}: {exc.message}")
            results = []
        result = results[0] if results else None
        status = result.status if result is not None else "failed"
        record = result.record if result is not None else None
        sid = record.snapshot_ids[0] if record is not None and record.snapshot_ids else ""
        ended = (record.ended if record is not None else None) or self.clock()
        self.parent = sid if status == "success" and sid else None  # partial: the next run walks everything
        if status not in ("success", "partial"):
            self.kept.drop()  # a run that did not succeed: the next one opens its repositories afresh
        if status in ("success", "partial"):
            self.summary.snapshots += 1
            if first is not None:
                self.history.add(RpoRow(self.job.name, first, ended, 0 if full else len(batch), sid))
                self.note(f"watch {self.job.name}: snapshot {sid[:8]} safe on every destination "
                          f"{ended - first:.1f}s after the first change it holds")  # fmt: skip
        elif status != "interrupted":
            self.summary.failed += 1
            why = "the job is running elsewhere" if status == "running" else "the run failed"
            self.note(f"watch {self.job.name}: {why}; a full walk in {self.job.watch_interval:g}s")
        self.plan.finished(status in ("success", "partial"), self.clock(), first)
        self._collect(now)  # what came during the run happened after it started
