"""TreeBatch: trees of a depth-first walk loaded ahead in batches (pure, fake loaders)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from amber.engine.treebatch import TreeBatch
from amber.errors import IntegrityError
from amber.repository import Node, Tree


def make_trees(fanout: int, depth: int) -> dict[bytes, Tree]:
    """A full tree of directories; IDs are their paths."""
    trees: dict[bytes, Tree] = {}

    def build(path: bytes, level: int) -> None:
        children = [path + b"/" + str(i).encode() for i in range(fanout)] if level < depth else []
        trees[path] = Tree(nodes=[Node(name=c.rsplit(b"/", 1)[1], type="dir", subtree=c) for c in children])
        for c in children:
            build(c, level + 1)

    build(b"r", 0)
    return trees


class Loader:
    def __init__(self, trees: dict[bytes, Tree], broken: set[bytes] = frozenset()) -> None:  # type: ignore[assignment]
        self.trees, self.broken = trees, broken
        self.batches: list[list[bytes]] = []
        self.singles: list[bytes] = []

    def many(self, ids: Sequence[bytes]) -> list[Tree | None]:
        self.batches.append(list(ids))
        return [None if i in self.broken else self.trees[i] for i in ids]

    def one(self, tree_id: bytes) -> Tree:
        self.singles.append(tree_id)
        if tree_id in self.broken:
            raise IntegrityError(f"tree {tree_id!r} is damaged")
        return self.trees[tree_id]


def walk(batch: TreeBatch, root: bytes) -> list[bytes]:
    """Depth first, announcing every subtree, as the copier does."""
    order: list[bytes] = []
    stack = [root]
    while stack:
        tid = stack.pop()
        order.append(tid)
        subtrees = [n.subtree for n in batch.get(tid).nodes]
        batch.expect(tid, subtrees)
        stack.extend(reversed(subtrees))
    return order


def subtrees(tree: Tree) -> list[bytes]:
    return [n.subtree for n in tree.nodes]


@pytest.mark.parametrize(
    ("fanout", "depth", "size", "learn", "loads"),
    [
        (3, 4, 64, False, 41),  # 121 trees; the walker announces: one load per inner tree at most
        (3, 4, 64, True, 6),  # loaded trees announce their subtrees: batches reach ahead
        (4, 4, 64, True, 8),  # 341 trees
        (10, 2, 64, False, 12),  # 111 trees: wide
        (1, 50, 64, True, 51),  # a chain: nothing to load ahead, one load per level
        (3, 4, 1, True, 121),  # batch of one: one load per tree
    ],
)
def test_walk_gets_every_tree_with_few_loads(
    fanout: int, depth: int, size: int, learn: bool, loads: int
) -> None:
    trees = make_trees(fanout, depth)
    loader = Loader(trees)
    batch = TreeBatch(loader.many, loader.one, subtrees if learn else None, batch=size)
    order = walk(batch, b"r")
    assert sorted(order) == sorted(trees)  # every tree, each once
    assert batch.loads == len(loader.batches) == loads
    assert sum(len(b) for b in loader.batches) == len(trees)  # nothing loaded twice
    assert loader.singles == []


def test_trees_the_walk_skips_are_dropped() -> None:
    """Announced subtrees the walker then skips (e.g. found in a cache) do not pile up."""
    trees = make_trees(4, 3)
    loader = Loader(trees)
    batch = TreeBatch(loader.many, loader.one, subtrees, batch=8, held=8)
    batch.get(b"r")
    for top in (b"r/0", b"r/1", b"r/2", b"r/3"):  # only the top level is walked
        batch.get(top)
    batch.get(b"r/3/0")
    assert loader.batches[-1] == [b"r/3/0", b"r/3/1", b"r/3/2", b"r/3/3"]  # not those of r/0..r/2


def test_held_trees_are_bounded() -> None:
    trees = make_trees(4, 4)
    loader = Loader(trees)
    batch = TreeBatch(loader.many, loader.one, subtrees, batch=64, held=10)
    walk(batch, b"r")
    assert max(len(b) for b in loader.batches) <= 10


def test_a_tree_the_batch_cannot_load_fails_alone() -> None:
    trees = make_trees(3, 2)
    loader = Loader(trees, broken={b"r/1"})
    batch = TreeBatch(loader.many, loader.one)
    assert batch.get(b"r") is trees[b"r"]
    batch.expect(b"r", [b"r/0", b"r/1", b"r/2"])
    assert batch.get(b"r/0") is trees[b"r/0"]  # loaded r/1 (None) and r/2 with it
    assert batch.get(b"r/2") is trees[b"r/2"]
    with pytest.raises(IntegrityError, match="damaged"):
        batch.get(b"r/1")  # retried alone: the loader's own error
    assert loader.singles == [b"r/1"]
