"""Directory listing with lstat, run ahead of the walker on a few threads.

On a cold cache a walk is bound by metadata I/O latency, not CPU; listing the
sibling directories in parallel hides that latency. The same job loads the
directory's tree from the parent snapshot, so the walker finds both ready and
the repository reads overlap the listing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from amber.repository import Node

Entry = tuple[bytes, os.stat_result | OSError]
NO_NODES: list[Node] = []


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


class DirScanner:
    def __init__(self, load_nodes: Callable[[bytes], list[Node] | None], threads: int = 4) -> None:
        """``load_nodes(tree_id)`` returns a parent tree's nodes (None if unreadable)."""
        self._load_nodes = load_nodes
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="scanner")
        self._pending: dict[bytes, Future[Listing]] = {}

    def _job(self, path: bytes, previous: bytes) -> Listing:
        try:
            entries, error = scan(path), None
        except OSError as exc:
            entries, error = [], exc
        return Listing(entries, error, self._load_nodes(previous) if previous else None)

    def prefetch(self, path: bytes, previous: bytes) -> None:
        if path not in self._pending:
            self._pending[path] = self._pool.submit(self._job, path, previous)

    def listing(self, path: bytes, previous: bytes) -> Listing:
        """The listing of ``path`` and the nodes of tree ``previous`` (b"" for none)."""
        fut = self._pending.pop(path, None)
        return fut.result() if fut is not None else self._job(path, previous)

    def close(self) -> None:
        for fut in self._pending.values():
            fut.cancel()
        self._pool.shutdown(wait=True)
