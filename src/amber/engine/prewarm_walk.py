"""The prewarm helper process itself: walk paths in the archiver's order and keep nothing.

prewarm.py starts this module in a fresh interpreter (``python -I -S``) and
imports it by file location, not as ``amber.engine.prewarm_walk``, so the
helper loads no amber package. Its peak RSS is counted with the backup's, so
it imports only ``os``, ``heapq``, ``_thread`` and its sibling walkrule.py
(the archiver's own rule for what is entered, and where it is read):
``threading``, ``subprocess``, ``contextlib`` and ``re`` would add ~3.5 MiB to
an 8 MiB interpreter. Exclude patterns that name a file or an absolute path
literally (``.cache``, ``/proc``) are matched here without ``re``; any other
pattern loads amber's PathMatcher. Nothing here decides what is backed up, so
walking a little more than the walker would do no harm.

The walk is in recorded paths, as the archiver's (excludes match them); each
directory is listed where the source reads it (walkrule.read_path).
"""

from __future__ import annotations

import _thread
import heapq
import os
import stat
import sys

TYPE_CHECKING = False
if TYPE_CHECKING or __package__:
    from amber.engine.walkrule import Mounts, Rule, read_path
else:  # the helper: this file runs as a top-level module next to walkrule.py
    from walkrule import Rule, read_path
if TYPE_CHECKING:  # annotations only: collections.abc costs the helper ~0.5 MiB
    from collections.abc import Callable

    Excluded = Callable[[bytes, bytes], bool] | None
    Item = tuple[tuple[bytes, ...], bytes, int]

_GLOB = frozenset("*?[")


def main(argv: list[str]) -> None:
    """Helper entry; exits when done or stdin closes. Its arguments:

    ``ONE_FILE_SYSTEM THREADS N PATTERN... M RECORDED_ROOT READ_ROOT ... PATH...``
    (M pairs of mounted roots, then the recorded backup paths).
    """
    _thread.start_new_thread(_walk_and_exit, parse(argv))
    # This thread waits for end of input: the backup closed it (finished) or died.
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    os._exit(0)


def parse(argv: list[str]) -> tuple[list[bytes], Excluded, bool, int, Mounts]:
    """``walk``'s arguments from the helper's command line (see main)."""
    one_file_system, threads, n = argv[0] == "1", int(argv[1]), int(argv[2])
    excluded = exclude_test(argv[3 : 3 + n])
    at = 4 + n
    m = int(argv[at - 1])
    roots = [os.fsencode(a) for a in argv[at : at + 2 * m]]
    mounts = tuple(zip(roots[::2], roots[1::2], strict=True))
    paths = [os.fsencode(p) for p in argv[at + 2 * m :]]
    return paths, excluded, one_file_system, threads, mounts


def _walk_and_exit(
    paths: list[bytes], excluded: Excluded, one_file_system: bool, threads: int, mounts: Mounts
) -> None:
    try:
        walk(paths, excluded, one_file_system, threads, mounts)
    finally:
        os._exit(0)


def exclude_test(patterns: list[str]) -> Excluded:
    """``excluded(path, name)`` for PathMatcher-normalized ``patterns``; None when there are none.

    Literal names and absolute paths are compared as bytes; a glob or a
    relative path pattern needs amber's matcher (and ``re``), loaded then.
    """
    if not patterns:
        return None
    names: set[bytes] = set()
    full: set[bytes] = set()
    for pattern in patterns:
        p = pattern.rstrip("/") or "/"
        if _GLOB.intersection(p) or ("/" in p and not p.startswith("/")):
            return _path_matcher(patterns)
        (full if "/" in p else names).add(os.fsencode(p))
    return lambda path, name: name in names or path in full


def _path_matcher(patterns: list[str]) -> Excluded:
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if src not in sys.path:
        sys.path.append(src)
    from amber.engine.patterns import PathMatcher

    return PathMatcher(patterns).matches


def walk(
    paths: list[bytes], excluded: Excluded, one_file_system: bool, threads: int, mounts: Mounts = ()
) -> int:
    """lstat everything below recorded ``paths`` as the archiver would, first in its order first.

    ``threads`` threads (this one included) list directories, lowest path
    first, each where ``mounts`` maps it. Returns the number of directories
    listed. Errors are ignored: the walker meets and reports them itself.
    """
    rule = Rule(excluded, one_file_system)
    queue: list[Item] = []
    for p in paths:
        try:
            st = os.lstat(read_path(mounts, p))
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            queue.append((tuple(c for c in p.split(b"/") if c), p, st.st_dev))
    heapq.heapify(queue)
    mutex = _thread.allocate_lock()
    idle: list[_thread.LockType] = []  # locks of waiting threads, held until woken
    state = {"busy": 0, "listed": 0, "running": max(1, threads)}
    all_done = _thread.allocate_lock()
    all_done.acquire()

    def wake_all() -> None:
        for lock in idle:
            lock.release()
        idle.clear()

    def work() -> None:
        mutex.acquire()
        while True:
            if not queue:
                if not state["busy"]:
                    break
                waiter = _thread.allocate_lock()
                waiter.acquire()
                idle.append(waiter)
                mutex.release()
                waiter.acquire()  # until another thread releases it
                mutex.acquire()
                continue
            key, path, dev = heapq.heappop(queue)
            state["busy"] += 1
            mutex.release()
            found = _list(path, key, dev, rule, mounts)
            mutex.acquire()
            for item in found:
                heapq.heappush(queue, item)
            state["busy"] -= 1
            state["listed"] += 1
            wake_all()
        wake_all()
        state["running"] -= 1
        if not state["running"]:
            all_done.release()
        mutex.release()

    for _ in range(max(1, threads) - 1):
        _thread.start_new_thread(work, ())
    work()
    all_done.acquire()
    return state["listed"]


def _list(path: bytes, key: tuple[bytes, ...], dev: int, rule: Rule, mounts: Mounts) -> list[Item]:
    """The subdirectories of recorded ``path`` that the archiver enters."""
    read = read_path(mounts, path)
    try:
        with os.scandir(read) as it:
            names = sorted([e.name for e in it])
    except OSError:
        return []
    base = path.rstrip(b"/") + b"/"
    read_base = read.rstrip(b"/") + b"/"
    found = []
    for name in names:
        try:
            st = os.lstat(read_base + name)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and rule.enters(base + name, name, st, dev):  # files: no call
            found.append(((*key, name), base + name, dev))
    return found
