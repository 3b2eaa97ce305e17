"""Trees a depth-first walk will open, loaded ahead in batches.

Loading trees one by one costs a storage request, a lookup and a decryption
call each. Instead, trees the walk will open are *announced*, each under a key
that sorts in walk order (the child indexes on its path, depth first), and
when the walk asks for a tree that is not loaded yet, it is loaded together
with the next announced ones (``Repository.load_trees``: trees are stored in
post-order, so these sit side by side in a pack and a batch takes a few
ranged reads).

Trees are announced either

* by the walker, as it opens a tree (:meth:`TreeBatch.expect`), when only it
  knows which subtrees it will descend into; or
* by the batch itself, when given ``children``: every tree it loads announces
  its subdirectories at once, so batches reach many levels ahead. Only for
  walks that descend into (nearly) everything.

A tree ID is announced once: a subtree that occurs twice is loaded once.
A tree that a batch could not load is loaded alone, so its error (missing,
damaged) is the single-tree load's own. Memory: at most ``held`` trees wait.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence

from amber.repository import Tree

LoadTrees = Callable[[Sequence[bytes]], list[Tree | None]]
LoadTree = Callable[[bytes], Tree]
Children = Callable[[Tree], Iterable[bytes]]
Key = tuple[int, ...]
BATCH = 64
HELD = 512


class TreeBatch:
    def __init__(
        self, load_trees: LoadTrees, load_tree: LoadTree, children: Children | None = None,
        batch: int = BATCH, held: int = HELD,
    ) -> None:  # fmt: skip
        self._load_trees = load_trees
        self._load_tree = load_tree
        self._children = children
        self._batch = max(1, batch)
        self._held = held
        self._keys: dict[bytes, Key] = {}  # every announced tree's key
        self._ahead: list[tuple[Key, bytes]] = []  # heap: announced, not loaded
        self._loaded: dict[bytes, Tree] = {}
        self._loaded_keys: list[tuple[Key, bytes]] = []  # heap, to drop what the walk passed
        self.loads = 0  # load_trees calls, for tests

    def expect(self, parent: bytes, tree_ids: Iterable[bytes]) -> None:
        """The walk opened ``parent`` and will open these subtrees of it, in this order."""
        self._announce(self._keys.get(parent, ()), tree_ids)

    def get(self, tree_id: bytes) -> Tree:
        key = self._keys.setdefault(tree_id, ())
        self._pass(key)
        tree = self._loaded.pop(tree_id, None)
        if tree is not None:
            return tree
        batch = [tree_id]
        room = min(self._batch, self._held - len(self._loaded))
        ahead, loaded = self._ahead, self._loaded
        while ahead and len(batch) < room:
            next_key, next_id = heapq.heappop(ahead)
            if next_key > key and next_id not in loaded:  # not one the walk passed (skipped)
                batch.append(next_id)
        self.loads += 1
        trees = self._load_trees(batch)
        for other, got in zip(batch, trees, strict=True):
            if got is None:
                continue
            if self._children is not None:
                self._announce(self._keys[other], self._children(got))
            if other != tree_id:
                loaded[other] = got
                heapq.heappush(self._loaded_keys, (self._keys[other], other))
        return trees[0] if trees[0] is not None else self._load_tree(tree_id)

    def _announce(self, parent_key: Key, tree_ids: Iterable[bytes]) -> None:
        keys, ahead = self._keys, self._ahead
        for i, tid in enumerate(tree_ids):
            if tid not in keys:
                keys[tid] = key = (*parent_key, i)
                heapq.heappush(ahead, (key, tid))

    def _pass(self, key: Key) -> None:
        """The walk is at ``key``: loaded trees before it will not be asked for (skipped)."""
        heap = self._loaded_keys
        while heap and heap[0][0] < key:
            self._loaded.pop(heapq.heappop(heap)[1], None)
