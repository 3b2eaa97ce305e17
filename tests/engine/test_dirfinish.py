"""Finishing walked directories: post-order, the backlog bound, parent tree reuse, failed reads."""

from __future__ import annotations

import hashlib

import msgspec
import pytest

from amber.engine import dirfinish
from amber.engine.dirfinish import DirFinisher, WalkDir
from amber.engine.filereader import FileContent
from amber.engine.progress import NullProgress
from amber.repository import Node, Summary, Tree


class _Trees:
    """Stores trees by the hash of their encoding, as the repository does with its keyed hash."""

    def __init__(self) -> None:
        self.saved: dict[bytes, Tree] = {}

    def save_tree(self, tree: Tree) -> tuple[bytes, bool]:
        tree_id = hashlib.sha256(msgspec.msgpack.encode(tree)).digest()
        new = tree_id not in self.saved
        self.saved[tree_id] = tree
        return tree_id, new


class _Read:
    """A file read that reports not done until ``finish``; ``result`` records a wait on it."""

    def __init__(self, content: FileContent | OSError) -> None:
        self._content = content
        self.finished = False
        self.waited = False

    def done(self) -> bool:
        return self.finished

    def result(self) -> FileContent:
        self.waited = not self.finished
        if isinstance(self._content, OSError):
            raise self._content
        return self._content


def _dir(name: bytes, reads: dict[bytes, _Read]) -> WalkDir:
    d = WalkDir(b"/" + name, [], None, {}, Node(name=name, type="dir"), None)
    for file, read in reads.items():
        node = Node(name=file, type="file", size=3)
        d.nodes.append(node)
        d.pending.append((node, read, None))
    return d


def _finisher(trees: _Trees, summary: Summary, skipped: list[bytes]) -> DirFinisher:
    return DirFinisher(
        trees, trees.saved.__contains__, summary, NullProgress(), lambda p, why: skipped.append(p), []
    )


def test_directories_finish_in_post_order_as_their_reads_complete() -> None:
    trees, summary, skipped = _Trees(), Summary(), []
    finisher = _finisher(trees, summary, skipped)
    slow, fast = _Read(FileContent([b"b1"], b"s1", 3, 1, 3)), _Read(FileContent([b"b2"], b"s2", 3))
    fast.finished = True
    first, second = _dir(b"a", {b"f": slow}), _dir(b"b", {b"g": fast})
    finisher.add(first)
    finisher.add(second)  # ready, but waits behind "a"
    assert not trees.saved and first.node is not None and first.node.subtree == b""
    slow.finished = True
    root = _dir(b"root", {})
    finisher.add(root)
    assert first.node.subtree and second.node is not None and second.node.subtree
    assert not slow.waited and finisher.root_id == root.node.subtree  # type: ignore[union-attr]
    assert finisher.finish_all() == finisher.root_id
    assert (summary.files_new, summary.data_blobs_added, summary.data_added, summary.tree_blobs_added) == (
        2, 1, 3, 3,
    )  # fmt: skip
    assert first.nodes[0].content == [b"b1"] and first.nodes[0].sha256 == b"s1"


@pytest.mark.parametrize(("bound", "waits"), [(0, True), (1, True), (2, False), (10_000, False)])
def test_over_the_backlog_bound_the_oldest_directory_is_waited_for(
    monkeypatch: pytest.MonkeyPatch, bound: int, waits: bool
) -> None:
    monkeypatch.setattr(dirfinish, "BACKLOG_NODES", bound)
    trees, summary, skipped = _Trees(), Summary(), []
    finisher = _finisher(trees, summary, skipped)
    slow = _Read(FileContent([b"b1"], b"s1", 3))
    finisher.add(_dir(b"a", {b"f": slow, b"g": _Read(FileContent())}))  # 2 nodes held
    assert slow.waited == waits and bool(trees.saved) == waits
    finisher.finish_all()
    assert len(trees.saved) == 1


def test_unchanged_nodes_reuse_the_parent_tree_id_and_a_failed_read_is_dropped() -> None:
    trees, summary, skipped = _Trees(), Summary(total_files=2, total_bytes=6), []
    finisher = _finisher(trees, summary, skipped)
    kept = Node(name=b"kept", type="file", size=3)
    parent_id, _ = trees.save_tree(Tree(nodes=[kept]))
    ok = _dir(b"same", {})
    ok.nodes.append(kept)
    ok.prev_id, ok.prev_nodes = parent_id, [kept]
    finisher.add(ok)
    assert ok.node is not None and ok.node.subtree == parent_id and summary.tree_blobs_added == 0
    gone = _Read(FileNotFoundError(2, "No such file or directory"))
    gone.finished = True
    d = _dir(b"d", {b"gone": gone})
    d.nodes.append(kept)
    d.prev_id, d.prev_nodes = parent_id, [kept]
    finisher.add(d)
    assert skipped == [b"/d/gone"] and (summary.total_files, summary.total_bytes) == (1, 3)
    assert d.node is not None and d.node.subtree == parent_id  # what is left equals the parent tree
