"""Live state for the dashboard: an event hub for Server-Sent Events and "Run now" in a thread.

Runs report from their own thread; the hub hands each event to every
connected client's bounded queue on that client's event loop. A client that
falls behind loses events rather than slowing a backup.

A run's progress and events reach the dashboard as a subscriber of that run's
operation sink (``amber.events``): for "Run now", the context the runner
builds; for jobs this process runs otherwise (the daemon serving the
dashboard), the runner watches ``services.operations.RUNNING`` and subscribes
to each job's context as it starts.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from amber.errors import AmberError
from amber.events import EventSink, RunEvent, Subscriber
from amber.ops.config.model import Config
from amber.ops.drills.drill import DrillRequest, drill_job, request_for
from amber.ops.limits import Limits
from amber.ops.run import job as run_service
from amber.ops.run.progress_log import ProgressRow
from amber.ops.run.scheduled_check import check_job
from amber.ops.state import RunRecord, StateDB
from amber.services import session
from amber.services.context import OperationContext, OperationRecord
from amber.services.operations import OperationRegistry

ACTIONS = ("run", "check", "drill")  # POST /jobs/NAME/ACTION
QUEUE_SIZE = 256
PROGRESS_INTERVAL = 0.25  # seconds between progress events per job


@dataclass(frozen=True)
class Event:
    name: str  # the SSE event name, e.g. "job-home"
    data: str  # an HTML fragment for htmx's sse-swap


def event_name(job: str) -> str:
    return "job-" + re.sub(r"[^A-Za-z0-9_-]", "_", job)


class EventHub:
    def __init__(self) -> None:
        self._clients: dict[asyncio.Queue[Event | None], asyncio.AbstractEventLoop] = {}
        self._lock = threading.Lock()

    def subscribe(self) -> asyncio.Queue[Event | None]:
        """A client's queue; None in it means the server is shutting down."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue(QUEUE_SIZE)
        with self._lock:
            self._clients[queue] = asyncio.get_running_loop()
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event | None]) -> None:
        with self._lock:
            self._clients.pop(queue, None)

    def close(self) -> None:
        """End every stream, so the server can stop without waiting for browsers to hang up."""
        self.publish(None)

    def publish(self, event: Event | None) -> None:
        """From any thread."""
        with self._lock:
            clients = list(self._clients.items())
        for queue, loop in clients:
            try:
                loop.call_soon_threadsafe(_offer, queue, event)
            except RuntimeError:  # that client's loop has closed
                self.unsubscribe(queue)


def _offer(queue: asyncio.Queue[Event | None], event: Event | None) -> None:
    if not queue.full():
        queue.put_nowait(event)
    elif event is None:  # the end must get through even to a client that fell behind
        queue.get_nowait()
        queue.put_nowait(None)


@dataclass
class LiveRun:
    """What the page shows about a job running in this process."""

    job: str
    action: str = "run"  # one of ACTIONS
    started: float = field(default_factory=time.time)
    phase: str = "starting"
    files: int = 0
    bytes: int = 0
    errors: int = 0
    status: str = "running"  # then the run's final status
    message: str = ""
    ended: float | None = None
    expected_bytes: int = 0  # what the last successful backup read; 0 = unknown

    @property
    def rate(self) -> float:
        elapsed = (self.ended or time.time()) - self.started
        return self.bytes / elapsed if elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left if this run reads as much as the last successful one; None when unknown."""
        if self.status != "running" or not self.expected_bytes or self.rate <= 0:
            return None
        return max(0.0, (self.expected_bytes - self.bytes) / self.rate)


class _Reporter(Subscriber):
    """A subscriber of one run's sink: updates its LiveRun and tells the hub, throttled.

    Files and bytes are the backup step's (what the ETA compares with the last backup);
    later steps (copy, check) only change the phase. ``ends``: the run's outcome event
    ends the live view (a run another front end started)."""

    def __init__(self, live: LiveRun, changed: Callable[[LiveRun], None], ends: bool = False) -> None:
        self.live, self.changed, self._last, self.ends = live, changed, 0.0, ends
        self._counting = True  # until a step other than the backup starts

    def _tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= PROGRESS_INTERVAL:
            self._last = now
            self.changed(self.live)

    def file_done(self, path: bytes, size: int, status: str) -> None:
        if self._counting:
            self.live.files += 1
            self.live.phase = "backing up"
            self._tick()

    def bytes_done(self, n: int) -> None:
        if self._counting:
            self.live.bytes += n
            self._tick()

    def error(self, path: bytes, message: str) -> None:
        if self._counting:
            self.live.errors += 1
            self._tick()

    def note(self, message: str) -> None:
        self.live.phase = message.removeprefix(f"{self.live.job}: ")
        self._tick(force=True)

    def notice(self, kind: str, message: str) -> None:
        if kind == "step":  # `amber run` starts a step: "backup main", "copy usb", "check main"
            self._counting = message.startswith("backup ")
            self.note(message)
        elif kind == "note":  # a step's result: "home: copy usb: success"
            self.note(message)
        elif kind == "subscriber":
            self.note(f"observer failed: {message}")

    def run_event(self, event: RunEvent) -> None:
        if event.kind == "start":
            self.live.phase = "started"
            self._tick(force=True)
        elif self.ends and event.kind in ("success", "partial", "failure"):
            self.live.status = str(event.details.get("status", event.kind))
            self.live.message = event.message
            self.finished()

    def finished(self) -> None:
        if self.live.ended is None:
            self.live.ended = time.time()
            self.live.phase = "finished"
            self._tick(force=True)


class _WeakWatcher:
    """Passes the registry's calls on to a runner while it exists."""

    def __init__(self, runner: weakref.ref[Runner]) -> None:
        self._runner = runner

    def operation_started(self, ctx: OperationContext) -> EventSink | None:
        runner = self._runner()
        return runner.operation_started(ctx) if runner is not None else None

    def operation_finished(self, ctx: OperationContext) -> None:
        runner = self._runner()
        if runner is not None:
            runner.operation_finished(ctx)


class Runner:
    """Starts configured jobs in background threads through ``ops.run``, one at a time per job."""

    def __init__(self, config: Config, changed: Callable[[LiveRun], None],
                 passwords: session.PasswordSource | None = None) -> None:  # fmt: skip
        self.config, self.changed = config, changed
        self.passwords = passwords or session.PasswordSource()
        self.live: dict[str, LiveRun] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._watched: dict[int, _Reporter] = {}  # id(context) -> reporter, for runs started elsewhere
        self._unwatch: Callable[[], None] = lambda: None
        self._recorded: set[str] = set()  # jobs whose live view comes from another process's progress rows

    def watch(self, registry: OperationRegistry) -> None:
        """Show the jobs other front ends of this process run (the daemon's), until :meth:`close`
        (or until this runner is dropped: the registry holds it weakly)."""
        self._unwatch = registry.watch(_WeakWatcher(weakref.ref(self)))
        weakref.finalize(self, self._unwatch)

    def close(self) -> None:
        self._unwatch()

    def operation_started(self, ctx: OperationContext) -> EventSink | None:
        """A job run in this process but not by this runner: a live view fed by its sink."""
        if ctx.record.command != "job" or not ctx.record.args:
            return None
        job = ctx.record.args[0]
        with self._lock:
            if self.running(job):  # ours: its reporter is subscribed already
                return None
            live = LiveRun(job, expected_bytes=self._expected_bytes(job))
            self.live[job] = live
            reporter = self._watched[id(ctx)] = _Reporter(live, self.changed, ends=True)
        self.changed(live)
        return reporter

    def operation_finished(self, ctx: OperationContext) -> None:
        reporter = self._watched.pop(id(ctx), None)
        if reporter is None:
            return
        if reporter.live.status == "running":  # ended before an outcome (another process had the job)
            code = ctx.record.exit_code
            reporter.live.status = "success" if code == 0 else "failed"
            reporter.live.message = ctx.record.error
        reporter.finished()

    def running(self, job: str) -> bool:
        thread = self._threads.get(job)
        return bool(thread and thread.is_alive())

    def start(self, job: str, action: str = "run") -> bool:
        """Start ``action`` (run | check | drill) on ``job``; False while this process has one going.

        The job lock of ``amber run`` also keeps other processes' runs out.
        """
        self.config.job(job)  # ConfigError for an unknown job
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        with self._lock:
            if self.running(job):
                return False
            expected = self._expected_bytes(job) if action == "run" else 0
            live = LiveRun(job, action=action, expected_bytes=expected)
            self.live[job] = live
            thread = threading.Thread(target=self._work, args=(live,), name=f"web-{action}", daemon=True)
            self._threads[job] = thread
            thread.start()
        self.changed(live)
        return True

    def _expected_bytes(self, job: str) -> int:
        try:
            last = StateDB(self.config.state.path).last_success(job)
        except AmberError:
            return 0
        backups = [d for d in (last.destinations if last else []) if d.step == "backup"]
        return int(backups[0].details.get("bytes", 0)) if backups else 0

    def _work(self, live: LiveRun) -> None:
        reporter = _Reporter(live, self.changed)
        ctx = OperationContext(record=OperationRecord(f"web {live.action}", [live.job]))
        ctx.events.subscribe(reporter)
        ctx.events.subscribe(run_service.standard_observer(self.config, reporter.note))  # as with `amber run`
        try:
            act = {"run": self._run, "check": self._check, "drill": self._drill}[live.action]
            live.status, live.message = act(live, reporter, ctx)
        except AmberError as exc:
            live.status, live.message = "failed", exc.message
        except Exception as exc:  # a bug must end the live view, not leave it "running"
            live.status, live.message = "failed", f"{type(exc).__name__}: {exc}"
        live.ended = time.time()
        live.phase = "finished"
        self.changed(live)

    def _run(self, live: LiveRun, reporter: _Reporter, ctx: OperationContext) -> tuple[str, str]:
        # nice and ionice are process-wide: they would slow the server with the run
        limits = replace(Limits.from_config(self.config.limits), nice=None, ionice_class=None,
                         ionice_level=None)  # fmt: skip
        options = run_service.RunOptions(limits=limits, passwords=self.passwords, context=ctx)
        [result] = run_service.run_jobs(self.config, [live.job], options)
        return result.status, result.error.message if result.error else ""

    def _check(self, live: LiveRun, reporter: _Reporter, ctx: OperationContext) -> tuple[str, str]:
        reporter.note("checking")
        record = check_job(self.config, self.config.job(live.job), self.passwords, ctx)
        return record.status, "; ".join(record.errors[:3])

    def _drill(self, live: LiveRun, reporter: _Reporter, ctx: OperationContext) -> tuple[str, str]:
        reporter.note("restore drill")
        request = request_for(self.config.job(live.job), DrillRequest(files=-1))
        results = drill_job(self.config, live.job, request, self.passwords)
        failed = [r for r, _ in results if not r.ok]
        if not results:
            return "failed", "no repository of this job is reachable"
        return ("failed" if failed else "success"), "; ".join(f"{r.repository}: {r.status}" for r in failed)

    def show_recorded(self, rows: dict[str, ProgressRow]) -> None:
        """Live views of runs other processes record in the state database (``ops.run.progress_log``):
        ``rows`` are those still going; a view whose row is gone ends with the run's recorded status."""
        changed: list[LiveRun] = []
        with self._lock:
            for job, row in rows.items():
                live = self.live.get(job)
                ours = live is not None and live.status == "running" and job not in self._recorded
                if job not in self.config.jobs or ours:
                    continue
                fresh = live is None or job not in self._recorded or live.started != row.started
                if fresh:
                    live = self.live[job] = LiveRun(job, started=row.started,
                                                    expected_bytes=self._expected_bytes(job))  # fmt: skip
                    self._recorded.add(job)
                assert live is not None
                before = (live.phase, live.files, live.bytes, live.errors)
                live.phase, live.files, live.bytes, live.errors = row.phase, row.files, row.bytes, row.errors
                if fresh or (live.phase, live.files, live.bytes, live.errors) != before:
                    changed.append(live)
            for job in [j for j in self._recorded if j not in rows]:
                self._recorded.discard(job)
                live = self.live[job]
                last = self._last_run(job)
                live.status = last.status if last is not None and last.status != "running" else "finished"
                live.message = "; ".join(last.errors[:1]) if last is not None else ""
                live.ended, live.phase = time.time(), "finished"
                changed.append(live)
        for live in changed:
            self.changed(live)

    def _last_run(self, job: str) -> RunRecord | None:
        try:
            return StateDB(self.config.state.path).last(job)
        except AmberError:
            return None

    def join(self, timeout: float | None = None) -> None:
        for thread in list(self._threads.values()):
            thread.join(timeout)
