"""File contents written by forked worker processes, each batch split between them.

Threads share one interpreter lock: a threaded restore of many small files keeps
about one core busy. For a repository on a local disk the restorer instead splits
each batch into ``processes`` parts and forks a worker for each part as soon as
one of at most ``processes`` workers is free, with no barrier between batches, so
both cores stay busy (design §15). A fork inherits everything the walk
built: the index, the key, the target's directory descriptors and the files'
nodes. So no task crosses a pipe and no worker opens anything by path: each
creates and writes as the writer of the walk's own process does
(``ContentWriter.write_now``), beneath the same descriptors, with every blob
checked against its ID. A worker sends back one report (counts, errors,
warnings, and what later hard links need) and exits.

Workers ignore SIGINT and SIGHUP (a terminal's Ctrl-C or hangup reaches the whole
process group): the restorer decides, and on cancel stops them with SIGTERM. The
three are blocked across each fork, so none reaches a worker before it has its own
dispositions. A worker that dies
leaves every file of its part reported as failed, so the restore exits non-zero
and a second run resumes. Forking happens on the walk's thread while no other
thread of the restorer runs, and a worker touches nothing that another thread of
the parent may hold (no progress display, no repository lock).
"""

from __future__ import annotations

import contextlib
import gc
import mmap
import os
import selectors
import signal
import struct
from dataclasses import dataclass, field

import msgspec

from amber.cancel import CancelToken
from amber.engine.progress import is_silent
from amber.engine.restore_files import ContentWriter
from amber.engine.restore_report import Reporter, RestoreFile, RestoreResult
from amber.memory import favour_throughput
from amber.storage.mapped import allow_in_this_process

FILE_COST = 32 * 1024  # making a file costs about what writing this many bytes does
INLINE_FILES = 64  # a batch this small is written in the walk's own process
INLINE_BYTES = 4 << 20
LARGE_FILE = 64 << 20  # and larger: written by threads (several packs at once) in a worker of their own
_METER = struct.Struct("<Q")
_PROGRESS_EVERY = 0.25  # seconds between progress updates while the restorer waits
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


class _Report(msgspec.Struct, array_like=True):
    result: RestoreResult | None = None  # what the worker restored (None: it crashed)
    progress_bytes: int = 0
    progress_done: list[tuple[bytes, int, str]] = []  # file_done events, kept only when someone listens
    progress_errors: list[tuple[bytes, str]] = []
    links: list[tuple[int, bool, int, bool]] = []  # (index in the part, created, inode, failed)
    crashed: str = ""


class _Recorder:
    """A worker's progress, kept for its report: the restorer replays it. Its bytes also
    go to a page shared with the restorer as they are written (a large file's progress)."""

    def __init__(self, silent: bool, meter: mmap.mmap) -> None:
        self.silent = silent
        self.meter = meter
        self.bytes = 0
        self.done: list[tuple[bytes, int, str]] = []
        self.errors: list[tuple[bytes, str]] = []

    def file_done(self, path: bytes, size: int, status: str) -> None:
        self.done.append((path, size, status))

    def bytes_done(self, n: int) -> None:
        self.bytes += n
        _METER.pack_into(self.meter, 0, self.bytes)

    def error(self, path: bytes, message: str) -> None:
        self.errors.append((path, message))


@dataclass
class _Worker:
    pid: int
    fd: int
    part: list[RestoreFile]
    meter: mmap.mmap  # the bytes it has written so far
    large: bool = False  # it writes large files, with threads of its own
    shown: int = 0  # of its bytes, those already passed on to the progress
    data: bytearray = field(default_factory=bytearray)


def split_batch(files: list[RestoreFile], parts: int) -> list[list[RestoreFile]]:
    """``files`` shared among at most ``parts`` workers at about equal cost, each in walk order.

    Large files (over 1/8 of a worker's share) are dealt out first, largest first, each
    to the worker with the least so far: a few big files split evenly. The small files
    then fill the workers up in walk order, one run of consecutive files each, so a
    directory's files stay in one worker (two processes creating files in one directory
    wait for each other on its lock).
    """
    if parts <= 1 or len(files) <= 1:
        return [files] if files else []
    costs = [f.node.size + FILE_COST for f in files]
    share = sum(costs) / parts
    large = {i for i, c in enumerate(costs) if c * 8 >= share}
    loads = [0] * parts
    taken: list[list[int]] = [[] for _ in range(parts)]
    for i in sorted(large, key=lambda i: -costs[i]):
        least = loads.index(min(loads))
        loads[least] += costs[i]
        taken[least].append(i)
    worker = 0
    for i in (i for i in range(len(files)) if i not in large):
        while worker < parts - 1 and loads[worker] >= share:
            worker += 1
        loads[worker] += costs[i]
        taken[worker].append(i)
    return [[files[i] for i in sorted(mine)] for mine in taken if mine]


class ForkedWriter:
    """``ContentWriter``'s batch interface, each batch written by forked workers."""

    def __init__(self, inner: ContentWriter, processes: int, report: Reporter, cancel: CancelToken) -> None:
        self._inner = inner
        self._processes = max(1, processes)
        self._report = report
        self._cancel = cancel
        self._live: dict[int, _Worker] = {}  # forked and not yet reaped

    @property
    def resumes(self) -> bool:
        return self._inner.resumes

    def create_empty(self, f: RestoreFile) -> None:
        self._inner.create_empty(f)

    def __enter__(self) -> ForkedWriter:
        self._inner.__enter__()
        self._cancel.on_cancel(self._stop)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self.drain()
            else:
                self._stop()
                self._wait(None, merge=False)
        finally:
            self._inner.__exit__(*exc)

    def write(self, files: list[RestoreFile]) -> None:
        """Start writing ``files``: each part is forked as soon as a worker is free.

        There is no barrier between batches: a worker of the previous batch may still
        run while this one's start, so both cores stay busy (at most ``processes``
        workers, each with one part, plus the batch the walk collects: memory stays
        bounded). Files of ``LARGE_FILE`` bytes or more go to a worker of their own that
        writes them with threads (C code without the interpreter lock: both cores for
        one file), beside the others, so the walk goes on meanwhile; one such worker at a
        time, so a tree of many large files never has their buffers all in memory at once.
        """
        large = [f for f in files if f.node.size >= LARGE_FILE]
        if large:
            files = [f for f in files if f.node.size < LARGE_FILE]
            self._wait(0, large=True)  # the previous batch's large files are written
            self._cancel.check()
            try:
                self._fork(large, large=True)
            except OSError:  # written by this process's threads, done before the next fork
                self._inner.write(large)
                self._inner.drain()
        self._start(files)

    def _start(self, files: list[RestoreFile]) -> None:
        if len(files) <= INLINE_FILES and sum(f.node.size for f in files) <= INLINE_BYTES:
            self._inner.write_now(files)  # a fork costs more than this
            return
        for part in split_batch(files, self._processes):
            self._wait(self._processes - 1, large=False)  # a worker is free
            self._cancel.check()
            try:
                self._fork(part)
            except OSError:  # no process or pipe to be had now (EAGAIN, ENOMEM, EMFILE)
                self._inner.write_now(part)

    def drain(self) -> None:
        """Wait for every worker and add what they report."""
        self._wait(None)
        self._cancel.check()

    # -- the parent ---------------------------------------------------------
    def _fork(self, part: list[RestoreFile], large: bool = False) -> None:
        meter = mmap.mmap(-1, _METER.size)  # shared with the worker
        try:
            read_end, write_end = os.pipe()
        except OSError:
            meter.close()
            raise
        # Blocked across the fork: one arriving before the worker has its own dispositions
        # would run the restorer's handler in the worker (a second "stop" there).
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            pid = os.fork()
        except OSError:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            os.close(read_end)
            os.close(write_end)
            meter.close()
            raise
        if pid == 0:  # the worker: never returns
            for signum in _STOP_SIGNALS:  # the restorer decides; a pending SIGINT or SIGHUP is dropped
                signal.signal(signum, signal.SIG_DFL if signum == signal.SIGTERM else signal.SIG_IGN)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            os.close(read_end)
            self._work(part, write_end, meter, large)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(write_end)
        self._live[pid] = _Worker(pid, read_end, part, meter, large)
        if self._cancel.cancelled:  # the cancel came between its check and this worker's start
            self._stop()

    def _wait(self, most: int | None, large: bool = False, merge: bool = True) -> None:
        """Read the workers' reports until at most ``most`` workers of the kind ``large``
        says still run (None: no worker at all); each one done is reaped, and with
        ``merge`` its report added (unless the restore was cancelled). Progress is passed
        on meanwhile."""

        def busy() -> bool:
            if most is None:
                return bool(self._live)
            return sum(wk.large is large for wk in self._live.values()) > most

        if not busy():
            return
        timeout = None if is_silent(self._report.progress) else _PROGRESS_EVERY
        with selectors.DefaultSelector() as sel:
            for wk in self._live.values():
                sel.register(wk.fd, selectors.EVENT_READ, wk)
            while busy():
                for key, _ in sel.select(timeout):
                    wk = key.data
                    chunk = os.read(wk.fd, 1 << 20)
                    if chunk:
                        wk.data += chunk
                        continue
                    sel.unregister(wk.fd)
                    os.close(wk.fd)
                    _, status = os.waitpid(wk.pid, 0)
                    del self._live[wk.pid]
                    if merge and not self._cancel.cancelled:
                        self._merge(wk, status)
                    wk.meter.close()
                if timeout is not None:
                    self._show_progress()

    def _show_progress(self) -> None:
        for wk in self._live.values():
            written = _METER.unpack_from(wk.meter)[0]
            if written > wk.shown:
                self._report.progress.bytes_done(written - wk.shown)
                wk.shown = written

    def _stop(self) -> None:
        """Stop every worker (a cancel: may run in a signal handler)."""
        for pid in list(self._live):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def _merge(self, wk: _Worker, status: int) -> None:
        report = None
        if os.waitstatus_to_exitcode(status) in (0, 1) and wk.data:
            try:
                report = msgspec.msgpack.decode(bytes(wk.data), type=_Report)
            except msgspec.DecodeError:
                report = None
        if report is None or report.result is None:
            why = report.crashed if report else _ended(status)
            for f in wk.part:
                self._report.fail(f, f"not restored: its worker process {why}")
            return
        with self._report.lock:
            self._report.result.absorb(report.result)
        progress = self._report.progress
        if report.progress_bytes > wk.shown:
            progress.bytes_done(report.progress_bytes - wk.shown)
        for path, size, state in report.progress_done:
            progress.file_done(path, size, state)
        for path, message in report.progress_errors:
            progress.error(path, message)
        for i, created, ino, failed in report.links:
            f = wk.part[i]
            f.created, f.ino, f.failed = created, ino, failed

    # -- the worker ---------------------------------------------------------
    def _work(self, part: list[RestoreFile], out: int, meter: mmap.mmap, large: bool) -> None:
        code = 1
        try:
            gc.disable()  # one part, then exit: cycles are not worth looking for
            favour_throughput()  # pack spans reuse heap memory: 650,000 page faults fewer (2 GiB set)
            allow_in_this_process()  # packs mapped, not copied: its death by SIGBUS fails only its part
            for other in self._live.values():
                os.close(other.fd)
            payload = msgspec.msgpack.encode(self._written(part, meter, large))
            code = 0
        except BaseException as exc:  # reported to the restorer, which names it
            payload = msgspec.msgpack.encode(_Report(crashed=f"failed: {type(exc).__name__}: {exc}"))
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(out, view) :]
        finally:
            os._exit(code)

    def _written(self, part: list[RestoreFile], meter: mmap.mmap, large: bool) -> _Report:
        result = RestoreResult()
        recorder = _Recorder(is_silent(self._report.progress), meter)
        writer = self._inner.reporting_to(Reporter(result, recorder))
        if large:  # a thread pool of this process's own (the restorer's threads are not here)
            with writer:
                writer.write(part)
        else:
            writer.write_now(part)
        links = [(i, f.created, f.ino, f.failed) for i, f in enumerate(part) if f.node.links > 1]
        return _Report(result, recorder.bytes, recorder.done, recorder.errors, links)


def _ended(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        return f"was killed by signal {signal.Signals(-code).name}"
    return f"exited with status {code}"
