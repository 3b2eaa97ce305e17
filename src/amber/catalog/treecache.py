"""The trees one catalog sync reads, kept for the next snapshot's diff.

A sync that ingests several snapshots of a lineage diffs each against the one before:
the trees read as the new side of one diff are the old side of the next. Keeping the
most recently read ones (a bounded LRU, by encoded size) reads and decodes each
changed tree once instead of twice. A tree is keyed by its ID, which the blob store
verifies on every load, so a kept tree is what a new load would return.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from amber.repository.rawtree import RawTree

# Bytes of encoded nodes (the heavy-churn benchmark reads ~23 MB of new trees a snapshot).
DEFAULT_BUDGET = 96 * 1024 * 1024


class TreeCache:
    def __init__(self, load: Callable[[bytes], RawTree], budget: int = DEFAULT_BUDGET) -> None:
        self._load = load
        self._budget = budget
        self._held = 0
        self._trees: OrderedDict[bytes, tuple[RawTree, int]] = OrderedDict()

    def __call__(self, tree_id: bytes) -> RawTree:
        found = self._trees.get(tree_id)
        if found is not None:
            self._trees.move_to_end(tree_id)
            return found[0]
        tree = self._load(tree_id)
        size = sum(map(len, tree.encoded)) + 64 * len(tree.encoded)
        if size <= self._budget:
            self._trees[tree_id] = (tree, size)
            self._held += size
            while self._held > self._budget:
                _, (_, dropped) = self._trees.popitem(last=False)
                self._held -= dropped
        return tree
