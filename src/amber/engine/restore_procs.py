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

Workers ignore SIGINT (a terminal's Ctrl-C reaches the whole process group): the
restorer decides, and on cancel stops them with SIGTERM. A worker that dies
leaves every file of its part reported as failed, so the restore exits non-zero
and a second run resumes. Forking happens on the walk's thread while no other
thread of the restorer runs, and a worker touches nothing that another thread of
the parent may hold (no progress display, no repository lock).
"""

from __future__ import annotations

import contextlib
import gc
import os
import selectors
import signal
from dataclasses import dataclass, field

import msgspec

from amber.cancel import CancelToken
from amber.engine.progress import is_silent
from amber.engine.restore_files import ContentWriter
from amber.engine.restore_report import Reporter, RestoreFile, RestoreResult

FILE_COST = 32 * 1024  # making a file costs about what writing this many bytes does
INLINE_FILES = 64  # a batch this small is written in the walk's own process
INLINE_BYTES = 4 << 20
LARGE_FILE = 64 << 20  # and larger: written by threads (several packs at once), not by a worker


class _Report(msgspec.Struct, array_like=True):
    result: RestoreResult | None = None  # what the worker restored (None: it crashed)
    progress_bytes: int = 0
    progress_done: list[tuple[bytes, int, str]] = []  # file_done events, kept only when someone listens
    progress_errors: list[tuple[bytes, str]] = []
    links: list[tuple[int, bool, int, bool]] = []  # (index in the part, created, inode, failed)
    crashed: str = ""


class _Recorder:
    """A worker's progress, kept for its report: the restorer replays it."""

    def __init__(self, silent: bool) -> None:
        self.silent = silent
        self.bytes = 0
        self.done: list[tuple[bytes, int, str]] = []
        self.errors: list[tuple[bytes, str]] = []

    def file_done(self, path: bytes, size: int, status: str) -> None:
        self.done.append((path, size, status))

    def bytes_done(self, n: int) -> None:
        self.bytes += n

    def error(self, path: bytes, message: str) -> None:
        self.errors.append((path, message))


@dataclass
class _Worker:
    pid: int
    fd: int
    part: list[RestoreFile]
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
                self._wait(0, merge=False)
        finally:
            self._inner.__exit__(*exc)

    def write(self, files: list[RestoreFile]) -> None:
        """Start writing ``files``: each part is forked as soon as a worker is free.

        There is no barrier between batches: a worker of the previous batch may still
        run while this one's start, so both cores stay busy (at most ``processes``
        workers, each with one part, plus the batch the walk collects: memory stays
        bounded). Files of ``LARGE_FILE`` bytes or more are written by the threads of
        this process (C code without the interpreter lock: both cores for one file, and
        progress per pack) while the workers write the rest; they are done before this
        returns, so no thread runs while a later worker is forked.
        """
        large = [f for f in files if f.node.size >= LARGE_FILE]
        small = [f for f in files if f.node.size < LARGE_FILE] if large else files
        self._start(small)
        if large:
            self._inner.write(large)
            self._inner.drain()

    def _start(self, files: list[RestoreFile]) -> None:
        if len(files) <= INLINE_FILES and sum(f.node.size for f in files) <= INLINE_BYTES:
            self._inner.write_now(files)  # a fork costs more than this
            return
        for part in split_batch(files, self._processes):
            self._wait(self._processes - 1, merge=True)  # a worker is free
            self._cancel.check()
            try:
                self._fork(part)
            except OSError:  # no process or pipe to be had now (EAGAIN, ENOMEM, EMFILE)
                self._inner.write_now(part)

    def drain(self) -> None:
        """Wait for every worker and add what they report."""
        self._wait(0, merge=True)
        self._cancel.check()

    # -- the parent ---------------------------------------------------------
    def _fork(self, part: list[RestoreFile]) -> None:
        read_end, write_end = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(read_end)
            os.close(write_end)
            raise
        if pid == 0:  # the worker: never returns
            os.close(read_end)
            self._work(part, write_end)
        os.close(write_end)
        self._live[pid] = _Worker(pid, read_end, part)
        if self._cancel.cancelled:  # the cancel came between its check and this worker's start
            self._stop()

    def _wait(self, most: int, merge: bool) -> None:
        """Read the workers' reports until at most ``most`` still run; each one done is reaped,
        and with ``merge`` its report added (unless the restore was cancelled)."""
        if len(self._live) <= most:
            return
        with selectors.DefaultSelector() as sel:
            for wk in self._live.values():
                sel.register(wk.fd, selectors.EVENT_READ, wk)
            while len(self._live) > most:
                for key, _ in sel.select():
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
        if report.progress_bytes:
            progress.bytes_done(report.progress_bytes)
        for path, size, state in report.progress_done:
            progress.file_done(path, size, state)
        for path, message in report.progress_errors:
            progress.error(path, message)
        for i, created, ino, failed in report.links:
            f = wk.part[i]
            f.created, f.ino, f.failed = created, ino, failed

    # -- the worker ---------------------------------------------------------
    def _work(self, part: list[RestoreFile], out: int) -> None:
        code = 1
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            gc.disable()  # one batch, then exit: cycles are not worth looking for
            for other in self._live.values():
                os.close(other.fd)
            payload = msgspec.msgpack.encode(self._written(part))
            code = 0
        except BaseException as exc:  # reported to the restorer, which names it
            payload = msgspec.msgpack.encode(_Report(crashed=f"failed: {type(exc).__name__}: {exc}"))
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(out, view) :]
        finally:
            os._exit(code)

    def _written(self, part: list[RestoreFile]) -> _Report:
        result = RestoreResult()
        recorder = _Recorder(is_silent(self._report.progress))
        self._inner.reporting_to(Reporter(result, recorder)).write_now(part)
        links = [(i, f.created, f.ino, f.failed) for i, f in enumerate(part) if f.node.links > 1]
        return _Report(result, recorder.bytes, recorder.done, recorder.errors, links)


def _ended(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        return f"was killed by signal {signal.Signals(-code).name}"
    return f"exited with status {code}"
