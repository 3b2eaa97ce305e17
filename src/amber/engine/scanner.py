"""Directory listing with lstat, optionally run far ahead of the walker on threads.

On a cold cache a walk is bound by metadata reads. With ``threads`` > 0 the
scanner walks the tree on its own, in the walker's order (depth first, names
sorted), and keeps up to ``max_ahead`` entries listed before the walker needs
them: as soon as a directory is listed, its subdirectories are queued, and
idle threads take the queued directory that comes first in walk order. Every
lstat re-takes the GIL, though, so when the prewarm helper process already
reads the metadata ahead (prewarm.py), ``threads=0`` is faster: the walker
lists each directory itself as it enters it, from the cache.

Each listing also brings the directory's tree from the parent snapshot (see
parenttrees.py). The walker stays in charge: it asks for each directory as
it enters it, and a directory the scanner has not started (or never queued)
is listed on the spot. Listings the walker has passed without asking for are
dropped.
"""

from __future__ import annotations

import heapq
import os
import threading
from collections.abc import Callable
from stat import S_ISDIR

from amber.engine.parenttrees import Key, ParentTrees
from amber.engine.walkrule import Rule
from amber.repository import Node

Entry = tuple[bytes, os.stat_result | OSError]
NO_NODES: list[Node] = []
LEAF: dict[bytes, object] = {}  # in a path trie: back up everything below


def stat_names(
    base: bytes, names: list[bytes], read_path: Callable[[bytes], bytes] | None = None
) -> list[Entry]:
    """lstat results (or the error) for ``names`` inside ``base``, each read where ``read_path`` maps it."""
    out: list[Entry] = []
    lstat = os.lstat
    prefix = base.rstrip(b"/") + b"/"
    for name in names:
        try:
            out.append((name, lstat(prefix + name if read_path is None else read_path(prefix + name))))
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


class _Job:
    __slots__ = ("dev", "key", "path", "prev_id")

    def __init__(self, key: Key, path: bytes, prev_id: bytes, dev: int | None) -> None:
        self.key, self.path, self.prev_id, self.dev = key, path, prev_id, dev

    def __lt__(self, other: _Job) -> bool:
        return self.key < other.key


def _in_place(path: bytes) -> bytes:
    return path


# subdirs(path, listing, dev) -> (child path, its parent tree ID or b"") the walker will enter
Subdirs = Callable[[bytes, Listing, int | None], list[tuple[bytes, bytes]]]


def path_trie(paths: list[bytes]) -> dict[bytes, object]:
    """Backup paths as a trie of path components; ``LEAF`` marks a backed-up directory."""
    trie: dict[bytes, object] = {}
    for p in paths:
        parts = [c for c in os.path.normpath(os.path.abspath(p)).split(b"/") if c]
        node = trie
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if nxt is LEAF:
                break
            node = nxt  # type: ignore[assignment]
        else:
            if not parts:
                return LEAF  # backing up "/" itself
            node[parts[-1]] = LEAF
    return trie


def subdirs_to_enter(rule: Rule) -> Subdirs:
    """The subdirectories the archiver enters below a backup path (walkrule.Rule.enters).

    ``dev`` is the listed directory's filesystem. The result runs on scanner threads.
    """

    def subdirs(path: bytes, listing: Listing, dev: int | None) -> list[tuple[bytes, bytes]]:
        by_name = listing.by_name
        base = path.rstrip(b"/") + b"/"
        enters = rule.enters
        out = []
        for name, st in listing.entries:
            if (
                st.__class__ is os.stat_result
                and S_ISDIR(st.st_mode)  # type: ignore[union-attr]  # most entries are files: no call
                and enters(base + name, name, st, dev)  # type: ignore[arg-type]
            ):
                prev = by_name.get(name)
                out.append((base + name, prev.subtree if prev is not None and prev.type == "dir" else b""))
        return out

    return subdirs


class DirScanner:
    def __init__(
        self, trees: ParentTrees, subdirs: Subdirs, threads: int = 4, max_ahead: int = 4096,
        read_path: Callable[[bytes], bytes] = _in_place,
    ) -> None:  # fmt: skip
        """``subdirs`` must name exactly the subdirectories the walker will enter, in its order.

        With ``threads=0`` the walker lists every directory itself as it enters it.
        Paths are recorded paths; ``read_path`` says where each directory is listed.
        """
        self._trees = trees
        self._read_path = read_path
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
            queue = self._queue
            while queue and self._queued.get(queue[0].path) is not queue[0]:
                heapq.heappop(queue)  # taken or passed: the walker goes in the queue's order
            if got is not None:
                self._ahead -= got[2].size
                self._cond.notify_all()
                if got[1] == prev_id:
                    return got[2]
        if job is None or job.prev_id != prev_id:
            job = _Job(key, path, prev_id, dev)
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
        self._trees.passed(key)
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
            entries, error = scan(self._read_path(job.path)), None
        except OSError as exc:
            entries, error = [], exc
        return Listing(entries, error, self._trees.nodes(job.key, job.prev_id) if job.prev_id else None)

    def _expand(self, job: _Job, listing: Listing) -> None:
        if listing.error is not None:
            return
        children = self._subdirs(job.path, listing, job.dev)
        if not children:
            return
        base = job.key
        with self._cond:
            if self._closed:
                return
            for child, prev_id in children:
                new = _Job((*base, child.rsplit(b"/", 1)[-1]), child, prev_id, job.dev)
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
    """Walk order key of a normalized absolute path."""
    return () if path == b"/" else tuple(path.split(b"/")[1:])
