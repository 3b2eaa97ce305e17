"""The parent snapshot's trees, loaded in batches in the walker's order.

A re-backup compares every directory with its tree in the parent snapshot.
Loading those trees one by one costs a storage request each. Instead, every
loaded tree makes its subdirectories' trees known (a frontier, ordered like
the walk: depth first, names sorted), and when the walker needs a tree that
is not loaded yet, it is loaded together with the next ``batch`` trees of the
frontier. Trees are stored in post-order, so the trees of one subtree sit
side by side in a pack, and a batch takes a few ranged reads.

A tree that cannot be read comes back as None: a damaged parent only costs
re-reading the files below it.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Sequence

from amber.repository import Node

Key = tuple[bytes, ...]  # path components: sorts in the walker's (depth first) order
# load_trees(ids) -> the nodes of each tree, None where unreadable
LoadTrees = Callable[[Sequence[bytes]], list[list[Node] | None]]
BATCH = 64
HELD = 384  # loaded trees waiting for the walker, at most


class ParentTrees:
    def __init__(self, load_trees: LoadTrees, batch: int = BATCH, held: int = HELD) -> None:
        self._load_trees = load_trees
        self._batch = batch
        self._held = held
        self._cond = threading.Condition()
        self._frontier: list[tuple[Key, bytes]] = []  # heap of known trees not loaded yet
        self._known: dict[Key, bytes] = {}  # frontier entries still wanted
        self._loading: set[Key] = set()
        self._loaded: dict[Key, tuple[bytes, list[Node] | None]] = {}
        self._loaded_keys: list[Key] = []  # heap, to drop what the walker passed
        self._passed: Key = ()
        self.loads = 0  # load_trees calls, for tests and benchmarks

    def nodes(self, key: Key, tree_id: bytes) -> list[Node] | None:
        """The nodes of ``tree_id``, the parent tree of the directory at ``key``."""
        with self._cond:
            while key in self._loading:
                self._cond.wait()
            got = self._loaded.pop(key, None)
            if got is not None and got[0] == tree_id:
                return got[1]
            batch = [(key, tree_id)]
            self._known.pop(key, None)
            frontier, known = self._frontier, self._known
            room = min(self._batch, self._held - len(self._loaded))
            while frontier and len(batch) < room:
                k, tid = heapq.heappop(frontier)
                if known.get(k) == tid and not k < self._passed:
                    del known[k]
                    batch.append((k, tid))
            self._loading.update(k for k, _ in batch)
            self.loads += 1
        loaded: list[list[Node] | None] = [None] * len(batch)
        try:
            loaded = self._load_trees([tid for _, tid in batch])
        finally:
            with self._cond:
                for (k, tid), nodes in zip(batch, loaded, strict=True):
                    self._loading.discard(k)
                    if nodes is not None:
                        self._learn(k, nodes)
                    if k != key:
                        self._loaded[k] = (tid, nodes)
                        heapq.heappush(self._loaded_keys, k)
                self._cond.notify_all()
        return loaded[0]

    def passed(self, key: Key) -> None:
        """The walker is at ``key``: trees of directories before it are no longer wanted."""
        with self._cond:
            self._passed = key
            heap = self._loaded_keys
            while heap and heap[0] < key:
                self._loaded.pop(heapq.heappop(heap), None)

    def _learn(self, key: Key, nodes: list[Node]) -> None:
        for n in nodes:
            if n.type == "dir" and n.subtree:
                child = (*key, n.name)
                self._known[child] = n.subtree
                heapq.heappush(self._frontier, (child, n.subtree))
