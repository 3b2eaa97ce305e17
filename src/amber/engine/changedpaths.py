"""What a file watcher saw change since the parent snapshot, and reusing the subtrees it did not.

``amber watch`` (ops/watch) marks the recorded paths inotify reported. A backup
given these marks walks only the directories on the way to a mark (and all of
a subtree marked whole, such as a directory created or moved in); any other
directory takes its subtree from the parent snapshot as it is, without being
listed. Inside a walked directory the usual rules of design §12 still apply
(an unchanged file is not opened), so a mark is a hint to look, never a
promise of change.

A reused subtree must still be counted in the snapshot's summary (the ransomware
check compares changed files with all files), so its counts are read from its
trees once and remembered by tree ID: a tree ID names its content, so the count
never goes stale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from amber.repository import Node, Summary, Tree


def _ancestors(path: bytes) -> Iterable[bytes]:
    """``/a/b/c`` -> ``/a/b``, ``/a``, ``b""`` (the walk's name for the root)."""
    while path:
        path = path[: path.rfind(b"/")]
        yield path


@dataclass(frozen=True)
class Counts:
    files: int
    bytes: int
    dirs: int  # directories below the subtree's own


class SubtreeCounter:
    """Files, bytes and directories under a tree ID, remembered across backups."""

    def __init__(self, limit: int = 200_000) -> None:
        self._memo: dict[bytes, Counts | None] = {}
        self._limit = limit

    def count(self, tree_id: bytes, load: Callable[[Sequence[bytes]], list[Tree | None]]) -> Counts | None:
        """None when a tree is unreadable or a file damaged: then the directory is walked instead."""
        if tree_id in self._memo:
            return self._memo[tree_id]
        trees: dict[bytes, Tree | None] = {}
        wanted = [tree_id]
        while wanted:  # breadth first, one batch of loads per level
            loaded = load(wanted)
            trees.update(zip(wanted, loaded, strict=True))
            wanted = sorted({n.subtree for t in loaded if t is not None for n in t.nodes
                             if n.type == "dir" and n.subtree and n.subtree not in trees
                             and n.subtree not in self._memo})  # fmt: skip
        return self._fold(tree_id, trees)

    def _fold(self, root: bytes, trees: dict[bytes, Tree | None]) -> Counts | None:
        order: list[bytes] = []
        stack, seen = [root], set()
        while stack:  # post-order over the tree DAG, so children are folded first
            tid = stack.pop()
            if tid in seen or tid in self._memo:
                continue
            seen.add(tid)
            order.append(tid)
            tree = trees.get(tid)
            stack += [n.subtree for n in (tree.nodes if tree else []) if n.type == "dir" and n.subtree]
        for tid in reversed(order):
            self._remember(tid, self._counts(trees.get(tid)))
        return self._memo.get(root)

    def _counts(self, tree: Tree | None) -> Counts | None:
        if tree is None:
            return None
        files = size = dirs = 0
        for node in tree.nodes:
            if node.damaged:
                return None
            if node.type == "dir":
                below = self._memo.get(node.subtree) if node.subtree else Counts(0, 0, 0)
                if below is None:
                    return None
                files, size, dirs = files + below.files, size + below.bytes, dirs + below.dirs + 1
            elif node.type == "file":
                files, size = files + 1, size + node.size
        return Counts(files, size, dirs)

    def _remember(self, tree_id: bytes, counts: Counts | None) -> None:
        if len(self._memo) >= self._limit:
            self._memo.clear()  # a cache: losing it costs only reading the trees again
        self._memo[tree_id] = counts


class ChangedPaths:
    """Recorded paths (bytes, absolute) to look at again; everything else is taken from the parent."""

    def __init__(self, counter: SubtreeCounter | None = None) -> None:
        self.counter = counter or SubtreeCounter()
        self._marks: set[bytes] = set()
        self._whole: set[bytes] = set()
        self._route: set[bytes] = set()

    def add(self, path: bytes) -> None:
        """``path`` changed itself (content, metadata, or, for a directory, its entries)."""
        path = path.rstrip(b"/")
        self._marks.add(path)
        self._route.update(_ancestors(path))

    def add_tree(self, path: bytes) -> None:
        """Nothing below ``path`` is known: walk all of it (a directory created or moved in)."""
        self.add(path)
        self._whole.add(path.rstrip(b"/"))

    def __len__(self) -> int:
        return len(self._marks)

    def needs_walk(self, path: bytes) -> bool:
        if path in self._route or path in self._marks:
            return True
        return bool(self._whole) and any(p in self._whole for p in _ancestors(path))

    def reuse_subtree(
        self, path: bytes, node: Node, prev: Node | None, has: Callable[[bytes], bool],
        load: Callable[[Sequence[bytes]], list[Tree | None]], summary: Summary,
    ) -> bool:  # fmt: skip
        """Give ``node`` (a directory the watcher saw no change in) the parent's subtree, counted.

        False, and the directory is walked as usual, when there is no parent
        subtree, it is not in the index, or it cannot be counted.
        """
        if prev is None or prev.type != "dir" or not prev.subtree or self.needs_walk(path):
            return False
        if not has(prev.subtree):
            return False
        counts = self.counter.count(prev.subtree, load)
        if counts is None:
            return False
        node.subtree = prev.subtree
        summary.dirs += counts.dirs
        summary.total_files += counts.files
        summary.files_unmodified += counts.files
        summary.total_bytes += counts.bytes
        return True
