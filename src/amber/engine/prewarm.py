"""Metadata prefetch in a helper process, so a cold walk does not wait on the disk.

On a cold cache an unchanged re-backup is bound by metadata reads: every
directory block and inode is read from disk by the walker's lstat calls, one at
a time. Threads in the backup process could issue those reads in parallel, but
each lstat re-takes the GIL, and the hand-offs cost more than the walker's own
work. So a separate process walks the same paths in the walker's order
(depth first, names sorted), listing and lstat-ing everything. The kernel
caches what it reads, and the walker, a little behind, finds its metadata in
memory; the kernel's share of a cold walk (most of it) runs on another core.
The helper keeps nothing; the results the backup uses are always the
walker's own, so it cannot change what is backed up.

The helper stops when it has walked everything, or as soon as its stdin
closes: when the archiver calls :meth:`Prewarm.stop`, or when the backup
process dies.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import stat
import subprocess
import sys
import threading

from amber.engine.patterns import PathMatcher

THREADS = 2  # more threads cost more CPU (GIL and kernel contention) than they save
_SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_BOOT = f"import sys; sys.path.insert(0, {_SRC!r}); from amber.engine.prewarm import main; main()"


class Prewarm:
    """A running helper process; :meth:`stop` ends it."""

    def __init__(self, proc: subprocess.Popen[bytes] | None) -> None:
        self._proc = proc

    @property
    def running(self) -> bool:
        return self._proc is not None

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()  # the helper exits at once on end of input
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start(
    paths: list[bytes], excludes: PathMatcher, one_file_system: bool, threads: int = THREADS
) -> Prewarm:
    """Start walking ``paths`` in a helper process. Failing to start it only loses the prefetch."""
    if not sys.executable:  # an embedded interpreter: nothing to start
        return Prewarm(None)
    args = [sys.executable, "-I", "-S", "-c", _BOOT, "1" if one_file_system else "0", str(threads)]
    args += [str(len(excludes.patterns)), *excludes.patterns, *(os.fsdecode(p) for p in paths)]
    try:
        proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True
        )
    except OSError:
        return Prewarm(None)
    return Prewarm(proc)


def main() -> None:
    """The helper: walk the paths given on the command line, then exit."""
    argv = sys.argv[1:]
    one_file_system, threads, n = argv[0] == "1", int(argv[1]), int(argv[2])
    excludes = PathMatcher(argv[3 : 3 + n])
    paths = [os.fsencode(p) for p in argv[3 + n :]]
    threading.Thread(target=_exit_on_eof, daemon=True).start()
    walk(paths, excludes, one_file_system, threads)
    os._exit(0)


def _exit_on_eof() -> None:
    with contextlib.suppress(OSError):
        while sys.stdin.buffer.read(4096):
            pass
    os._exit(0)


def walk(paths: list[bytes], excludes: PathMatcher, one_file_system: bool, threads: int) -> int:
    """lstat everything below ``paths`` as the archiver would, first in its order first.

    Returns the number of directories listed. Errors are ignored: the walker
    meets and reports them itself.
    """
    queue: list[tuple[tuple[bytes, ...], bytes, int]] = []
    for p in paths:
        with contextlib.suppress(OSError):
            st = os.lstat(p)
            if stat.S_ISDIR(st.st_mode):
                queue.append((tuple(c for c in p.split(b"/") if c), p, st.st_dev))
    heapq.heapify(queue)
    cond = threading.Condition()
    busy = 0
    listed = 0

    def work() -> None:
        nonlocal busy, listed
        while True:
            with cond:
                while not queue and busy:
                    cond.wait()
                if not queue:
                    cond.notify_all()
                    return
                key, path, dev = heapq.heappop(queue)
                busy += 1
            found = _list(path, key, dev, excludes, one_file_system)
            with cond:
                for item in found:
                    heapq.heappush(queue, item)
                busy -= 1
                listed += 1
                cond.notify_all()

    workers = [threading.Thread(target=work, daemon=True) for _ in range(max(1, threads))]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return listed


def _list(
    path: bytes, key: tuple[bytes, ...], dev: int, excludes: PathMatcher, one_file_system: bool
) -> list[tuple[tuple[bytes, ...], bytes, int]]:
    try:
        with os.scandir(path) as it:
            names = sorted([e.name for e in it])
    except OSError:
        return []
    base = path.rstrip(b"/") + b"/"
    found = []
    for name in names:
        child = base + name
        try:
            st = os.lstat(child)
        except OSError:
            continue
        if (
            stat.S_ISDIR(st.st_mode)
            and (not one_file_system or st.st_dev == dev)
            and not (excludes and excludes.matches(child, name))
        ):
            found.append(((*key, name), child, dev))
    return found
