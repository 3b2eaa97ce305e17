"""Copy jobs in worker processes, for copies between two repositories on local disks.

A copy spends most of its time on per-blob work for many small blobs:
decrypting, decompressing and hashing each one, and sealing it again. Threads
share one interpreter lock, and each short C call that releases it hands it
around, so a threaded copy uses about one core. Worker processes each have
their own: every worker opens both repositories itself, keeps its own blob
store for the destination (its own packs and index files), and takes whole
source packs as jobs (:class:`~amber.engine.copypack.PackCopier`). The main
process walks the trees, writes the trees, and hands out jobs.

Order (data -> index -> snapshot): :meth:`ProcessJobs.flush` makes every
worker write its open packs and then its index file, and returns the rows so
the caller's index knows them; only then does the caller flush its own store
and write the snapshot. A worker that fails makes its job fail with the same
error class; a worker that dies makes every later call fail.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from multiprocessing.connection import Connection
from typing import Any

from amber import errors
from amber.engine.copypack import CopyStats, PackCopier
from amber.engine.progress import NullProgress, Progress
from amber.repository import Location, PackedBlob, StoreSpec

Pairs = list[tuple[bytes, bytes]]


def _worker(conn: Connection, src: StoreSpec, dst: StoreSpec, same_ids: bool) -> None:
    """A worker process: jobs in, (source ID, destination ID) pairs and counts out."""
    try:
        source, dest = src.open(load_index=False), dst.open(load_index=True)
        known = dest.index.packs()
        stats = CopyStats()
        copy = PackCopier(source, dest, None if same_ids else dest.key.blob_id, stats, NullProgress())
    except BaseException as exc:  # reported with the first job
        setup_error: BaseException | None = exc
    else:
        setup_error = None
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return  # the copy ended or died
        try:
            if setup_error is not None:
                raise setup_error
            if msg[0] == "job":
                before = _counts(stats)
                pairs = copy(msg[2], msg[3])
                counts = [a - b for a, b in zip(_counts(stats), before, strict=True)]
                conn.send(("done", msg[1], pairs, counts))
            else:  # flush: packs, then the index file naming them
                dest.flush()
                new = dest.index.packs() - known
                known |= new
                conn.send(("flushed", msg[1], dest.index.pack_rows(new)))
        except BaseException as exc:
            conn.send(("error", msg[1], type(exc).__name__, str(exc)))


def _counts(stats: CopyStats) -> list[int]:
    return [stats.blobs_read, stats.bytes_read, stats.blobs_added, stats.bytes_added, stats.trees_added]


def _error(name: str, message: str) -> BaseException:
    kind = getattr(errors, name, None)
    if isinstance(kind, type) and issubclass(kind, errors.AmberError):
        return kind(message)
    return errors.AmberError(f"copy worker failed: {name}: {message}")


class ProcessJobs:
    """Worker processes that run copy jobs; jobs go to the least busy one."""

    def __init__(
        self, src: StoreSpec, dst: StoreSpec, same_ids: bool, workers: int, stats: CopyStats,
        progress: Progress | None = None,
    ) -> None:  # fmt: skip
        self._args = (src, dst, same_ids)
        self._workers = max(1, workers)
        self._stats = stats
        self._progress = progress or NullProgress()
        self._lock = threading.Lock()
        self._pending: dict[int, Future[Any]] = {}
        self._load: list[int] = []
        self._conns: list[Connection] = []
        self._procs: list[Any] = []
        self._socks: list[socket.socket] = []
        self._readers: list[threading.Thread] = []
        self._next = 0
        self.written: set[bytes] = set()  # destination IDs the workers stored (for has())

    def _start(self) -> None:
        """Start the workers at the first job: a copy with nothing to read costs no process.

        A fresh interpreter runs this module (no fork of a threaded process, and
        unlike multiprocessing's spawn, the caller's main module is not re-run).
        """
        for i in range(self._workers):
            mine, theirs = socket.socketpair()
            with theirs:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "amber.engine.copyprocs", str(theirs.fileno())],
                    pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                )  # fmt: skip
            self._socks.append(mine)  # kept to shut down: wakes a blocked send or receive
            here = Connection(os.dup(mine.fileno()))
            here.send(self._args)
            reader = threading.Thread(target=self._read, args=(i, here), daemon=True, name=f"copy-reader-{i}")
            self._conns.append(here)
            self._procs.append(proc)
            self._load.append(0)
            self._readers.append(reader)
            reader.start()

    def submit(
        self, _fn: Callable[..., Pairs], pack: str, wanted: list[tuple[bytes, Location]]
    ) -> Future[Pairs]:
        """Like ``Executor.submit(fn, pack, wanted)``; ``fn`` runs in a worker process instead."""
        with self._lock:
            if not self._conns:
                self._start()
            worker = min(range(len(self._conns)), key=self._load.__getitem__)
            job_id, future = self._register(worker)
        self._deliver(worker, ("job", job_id, pack, wanted))
        return future

    def flush(self) -> dict[str, list[PackedBlob]]:
        """Every worker writes its packs and index file; returns their rows, once all are done."""
        with self._lock:
            jobs = [self._register(i) for i in range(len(self._conns))]
        for worker, (job_id, _) in enumerate(jobs):
            self._deliver(worker, ("flush", job_id))
        rows: dict[str, list[PackedBlob]] = {}
        for _, future in jobs:
            rows.update(future.result())
        return rows

    def close(self, abort: bool = False) -> None:
        """End the workers: once they have done the jobs sent (end of input), or at once with ``abort``."""
        for sock in self._socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
        for proc in self._procs:
            if abort:
                proc.kill()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for sock in self._socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # our readers see the end
            sock.close()
        for reader in self._readers:
            reader.join(timeout=10)
        for conn in self._conns:
            conn.close()

    def _register(self, worker: int) -> tuple[int, Future[Any]]:
        """A job ID and its future (lock held)."""
        job_id = self._next
        self._next += 1
        future: Future[Any] = Future()
        self._pending[job_id] = future
        self._load[worker] += 1
        return job_id, future

    def _deliver(self, worker: int, msg: tuple[Any, ...]) -> None:
        """Send without the state lock: a full pipe blocks until the worker reads, and the
        worker reads only once our reader thread (which needs the state lock) takes its replies."""
        try:
            self._conns[worker].send(msg)
        except OSError as exc:
            with self._lock:
                self._fail(worker, msg[1], errors.StorageError(f"copy worker {worker} is gone: {exc}"))

    def _read(self, worker: int, conn: Connection) -> None:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break
            kind, job_id = msg[0], msg[1]
            if kind == "done":
                pairs, counts = msg[2], msg[3]
                with self._lock:
                    self.written.update(dst for _, dst in pairs)
                    s = self._stats
                    s.blobs_read += counts[0]
                    s.bytes_read += counts[1]
                    s.blobs_added += counts[2]
                    s.bytes_added += counts[3]
                    s.trees_added += counts[4]
                self._progress.bytes_done(counts[1])
                self._resolve(worker, job_id, pairs)
            elif kind == "flushed":
                self._resolve(worker, job_id, msg[2])
            else:
                with self._lock:
                    self._load[worker] -= 1
                    self._fail(worker, job_id, _error(msg[2], msg[3]))
        with self._lock:  # the worker died: nothing pending on it will finish
            gone = errors.StorageError(f"copy worker {worker} exited unexpectedly")
            for job_id in list(self._pending):
                self._fail(worker, job_id, gone)

    def _resolve(self, worker: int, job_id: int, value: Any) -> None:
        with self._lock:
            future = self._pending.pop(job_id, None)
            self._load[worker] -= 1
        if future is not None and not future.done():  # a cancelled job's result is dropped
            future.set_result(value)

    def _fail(self, worker: int, job_id: int, exc: BaseException) -> None:
        """(lock held)"""
        future = self._pending.pop(job_id, None)
        if future is not None and not future.done():
            future.set_exception(exc)


def _serve() -> None:
    """Entry point of a worker process: ``python -m amber.engine.copyprocs FD``."""
    conn = Connection(int(sys.argv[1]))
    src, dst, same_ids = conn.recv()
    _worker(conn, src, dst, same_ids)


__all__ = ["ProcessJobs"]

if __name__ == "__main__":
    _serve()
