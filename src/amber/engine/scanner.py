"""Directory listing with lstat, run far ahead of the walker on several threads.

On a cold cache a walk is bound by metadata I/O latency, not CPU. The scanner
therefore walks the tree on its own, in the walker's order (depth first,
names sorted), and keeps up to ``max_ahead`` entries listed before the walker
needs them: as soon as a directory is listed, its subdirectories are queued,
and idle threads take the queued directory that comes first in walk order.
Each job also brings the directory's tree from the parent snapshot; the trees
of a directory's subdirectories are loaded together, a batch per few reads.

The walker stays in charge: it asks for each directory as it enters it, and
a directory the scanner has not started (or never queued) is listed on the
spot. Listings the walker has passed without asking for are dropped.
"""

from __future__ import annotations

import heapq
import os
import threading
from collections.abc import Callable, Sequence

from amber.repository import Node

Entry = tuple[bytes, os.stat_result | OSError]
Key = tuple[bytes, ...]  # path components: sorts in the walker's (depth first) order
NO_NODES: list[Node] = []
TREE_BATCH = 64  # parent trees of sibling directories loaded together

# load_trees(ids) -> nodes of each parent tree, None where unreadable
LoadTrees = Callable[[Sequence[bytes]], list[list[Node] | None]]


def stat_names(base: bytes, names: list[bytes]) -> list[Entry]:
    """lstat results (or the error) for ``names`` inside ``base``."""
    out: list[Entry] = []
    lstat = os.lstat
    prefix = base + b"/"
    for name in names:
        try:
            out.append((name, lstat(prefix + name)))
        except OSError as exc:
            out.append((name, exc))
    return out


def scan(path: bytes) -> list[Entry]:
    """Sorted entries of a directory with their lstat results (or the error)."""
    with os.scandir(path) as it:
        names = sorted([e.name for e in it])
    return stat_names(path, names)


class Listing:
    """A directory's entries (or why it could not be listed) and its previous nodes."""

    __slots__ = ("by_name", "entries", "error", "loaded", "previous")

    def __init__(self, entries: list[Entry], error: OSError | None, previous: list[Node] | None) -> None:
        self.entries = entries
        self.error = error
        self.loaded = previous is not None  # False: no parent tree, or it could not be read
        self.previous = previous or NO_NODES  # nodes of the parent snapshot's tree, in stored order
        self.by_name = {n.name: n for n in previous} if previous else {}

    @property
    def size(self) -> int:
        return len(self.entries) + len(self.previous)


class _Siblings:
    """Parent trees of one directory's subdirectories, loaded TREE_BATCH at a time."""

    __slots__ = ("ids", "loaded", "lock")

    def __init__(self, ids: list[bytes]) -> None:
        self.ids = ids
        self.loaded: dict[int, list[Node] | None] = {}
        self.lock = threading.Lock()

    def nodes(self, i: int, load_trees: LoadTrees) -> list[Node] | None:
        with self.lock:
            if i not in self.loaded:
                stop = min(len(self.ids), i + TREE_BATCH)
                batch = [j for j in range(i, stop) if self.ids[j]]
                for j, nodes in zip(batch, load_trees([self.ids[j] for j in batch]), strict=True):
                    self.loaded[j] = nodes
            return self.loaded.pop(i, None)


class _Job:
    __slots__ = ("dev", "index", "key", "path", "prev_id", "siblings")

    def __init__(
        self, key: Key, path: bytes, prev_id: bytes, dev: int | None, siblings: _Siblings | None, index: int
    ) -> None:
        self.key, self.path, self.prev_id, self.dev = key, path, prev_id, dev
        self.siblings, self.index = siblings, index

    def __lt__(self, other: _Job) -> bool:
        return self.key < other.key


# subdirs(path, listing, dev) -> (child path, its parent tree ID or b"") the walker will enter
Subdirs = Callable[[bytes, Listing, int | None], list[tuple[bytes, bytes]]]


class DirScanner:
    def __init__(
        self, load_trees: LoadTrees, subdirs: Subdirs, threads: int = 8, max_ahead: int = 16384
    ) -> None:
        """``subdirs`` must name exactly the subdirectories the walker will enter, in its order."""
        self._load_trees = load_trees
        self._subdirs = subdirs
        self._threads = threads
        self._max_ahead = max_ahead
        self._cond = threading.Condition()
        self._queue: list[_Job] = []  # heap, first in walk order on top
        self._queued: dict[bytes, _Job] = {}
        self._running: set[bytes] = set()
        self._ready: dict[bytes, tuple[Key, bytes, Listing]] = {}
        self._ready_keys: list[tuple[Key, bytes]] = []  # heap, to drop what the walker passed
        self._ahead = 0  # entries and parent nodes listed but not yet taken
        self._passed: Key = ()  # walk order key of the last directory taken
        self._closed = False
        self._workers: list[threading.Thread] = []

    # -- walker side --------------------------------------------------------
    def listing(self, path: bytes, prev_id: bytes, dev: int | None) -> Listing:
        """The listing of ``path`` and the nodes of its parent tree ``prev_id`` (b"" for none).

        Its subdirectories (as ``subdirs`` names them) are queued for listing.
        """
        key = _key(path)
        with self._cond:
            self._pass(key)
            while path in self._running:
                self._cond.wait()
            got = self._ready.pop(path, None)
            job = self._queued.pop(path, None)
            if got is not None:
                self._ahead -= got[2].size
                self._cond.notify_all()
                if got[1] == prev_id:
                    return got[2]
        if job is None or job.prev_id != prev_id:
            job = _Job(key, path, prev_id, dev, None, 0)
        listing = self._list(job)
        self._expand(job, listing)
        return listing

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for t in self._workers:
            t.join()

    # -- internals ----------------------------------------------------------
    def _pass(self, key: Key) -> None:
        """Forget listings of directories before ``key`` in walk order: the walker skipped them."""
        self._passed = key
        rk = self._ready_keys
        while rk and rk[0][0] < key:
            _, path = heapq.heappop(rk)
            got = self._ready.pop(path, None)
            if got is not None:
                self._ahead -= got[2].size
        if rk and not self._ready:
            rk.clear()

    def _list(self, job: _Job) -> Listing:
        try:
            entries, error = scan(job.path), None
        except OSError as exc:
            entries, error = [], exc
        previous: list[Node] | None = None
        if job.prev_id:
            if job.siblings is not None:
                previous = job.siblings.nodes(job.index, self._load_trees)
            else:
                previous = self._load_trees([job.prev_id])[0]
        return Listing(entries, error, previous)

    def _expand(self, job: _Job, listing: Listing) -> None:
        if listing.error is not None:
            return
        children = self._subdirs(job.path, listing, job.dev)
        if not children:
            return
        siblings = _Siblings([prev for _, prev in children])
        base = job.key
        with self._cond:
            if self._closed:
                return
            for i, (child, prev_id) in enumerate(children):
                new = _Job((*base, child.rsplit(b"/", 1)[-1]), child, prev_id, job.dev, siblings, i)
                self._queued[child] = new
                heapq.heappush(self._queue, new)
            self._cond.notify_all()
            if len(self._workers) < self._threads:
                self._start_workers()

    def _start_workers(self) -> None:
        for n in range(len(self._workers), self._threads):
            t = threading.Thread(target=self._work, name=f"scanner_{n}", daemon=True)
            t.start()
            self._workers.append(t)

    def _next_job(self) -> _Job | None:
        """The queued directory first in walk order, once there is room ahead (lock held)."""
        while True:
            if self._closed:
                return None
            if self._queue and self._ahead < self._max_ahead:
                job = heapq.heappop(self._queue)
                if self._queued.get(job.path) is not job:
                    continue  # taken by the walker, or superseded
                del self._queued[job.path]
                if job.key < self._passed:
                    continue  # the walker went past it
                self._running.add(job.path)
                return job
            self._cond.wait()

    def _work(self) -> None:
        while True:
            with self._cond:
                job = self._next_job()
            if job is None:
                return
            try:
                listing = self._list(job)
                self._expand(job, listing)
            finally:
                with self._cond:
                    self._running.discard(job.path)
                    if not self._closed and not job.key < self._passed:
                        self._ready[job.path] = (job.key, job.prev_id, listing)
                        heapq.heappush(self._ready_keys, (job.key, job.path))
                        self._ahead += listing.size
                    self._cond.notify_all()


def _key(path: bytes) -> Key:
    return tuple(c for c in path.split(b"/") if c)
