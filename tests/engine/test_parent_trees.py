"""Parent trees for a re-backup: batched loads, walk-order batches, and damage.

``Repository.load_trees`` reads many trees with a few ranged reads;
``ParentTrees`` loads them in the walker's order; a damaged or missing parent
tree only costs re-reading the files below it, never a wrong snapshot.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from amber.engine.archiver import ArchiveOptions, Archiver
from amber.engine.parenttrees import Key, ParentTrees
from amber.engine.progress import NullProgress
from amber.repository import Node, Repository, init_repository, open_repository
from amber.services.backup import BackupOutcome, BackupRequest, backup_paths, content_reader
from amber.storage import open_backend
from tests.conftest import PASSWORD


def _make(src: Path, dirs: int = 12, depth: int = 3) -> None:
    """A tree of ``dirs`` top directories, each a chain ``depth`` deep, a file at every level."""
    for i in range(dirs):
        d = src / f"top{i:02}"
        for level in range(depth):
            d.mkdir(parents=True, exist_ok=True)
            (d / f"f{level}.txt").write_bytes(b"%d/%d\n" % (i, level) * (level + 1))
            d = d / f"sub{level}"
    (src / "empty1").mkdir()
    (src / "empty2").mkdir()  # the same (empty) tree as empty1: one blob, two directories
    for _ in os.walk(src):  # relatime: settle the directories' atimes
        pass


def _backup(repo: Repository, src: Path) -> BackupOutcome:
    with repo.lock():
        return backup_paths(repo, BackupRequest(paths=[str(src)]))


def _tree_of(repo: Repository, root: bytes, src: Path) -> bytes:
    tree_id = root
    for part in src.parts[1:]:
        tree_id = next(n.subtree for n in repo.load_tree(tree_id).nodes if n.name == os.fsencode(part))
    return tree_id


def _walk_order(repo: Repository, tree_id: bytes, key: Key = ()) -> list[tuple[Key, bytes]]:
    """(key, tree ID) of every directory below ``tree_id`` in the walker's order."""
    out = [(key, tree_id)]
    for n in sorted(repo.load_tree(tree_id).nodes, key=lambda n: n.name):
        if n.type == "dir":
            out += _walk_order(repo, n.subtree, (*key, n.name))
    return out


def _pack_file(repo_path: Path, pack: str) -> Path:
    return repo_path / "data" / pack[:2] / pack


def _reopen(repo_path: Path) -> Repository:
    return open_repository(open_backend(str(repo_path)), PASSWORD.encode())


def test_load_trees_matches_load_tree_in_order_with_duplicates_and_unknowns(
    repo: Repository, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    _make(src)
    snap = _backup(repo, src).snapshot
    ids = [tid for _, tid in _walk_order(repo, _tree_of(repo, snap.tree, src))]
    assert len(ids) == 1 + 12 * 3 + 2 and len(set(ids)) == len(ids) - 1  # empty1 == empty2
    unknown = b"\x01" * 32
    asked = [*reversed(ids), unknown, ids[0]]
    got = repo.load_trees(asked)
    assert got[-2] is None
    assert [t.nodes if t else None for t in got[:-2]] == [repo.load_tree(t).nodes for t in reversed(ids)]
    assert got[-1] is not None and got[-1].nodes == repo.load_tree(ids[0]).nodes
    assert repo.load_trees([]) == []


def test_load_trees_returns_none_only_for_the_damaged_tree(
    repo_path: Path, repo: Repository, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    _make(src)
    snap = _backup(repo, src).snapshot
    ids = [tid for _, tid in _walk_order(repo, _tree_of(repo, snap.tree, src))]
    victim = ids[5]
    loc = repo.blobs.index.lookup(victim)
    assert loc is not None
    path = _pack_file(repo_path, loc.pack)
    data = bytearray(path.read_bytes())
    data[loc.offset + loc.length // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    got = repo.load_trees(ids)
    assert got[5] is None
    assert all(t is not None for i, t in enumerate(got) if i != 5)

    path.unlink()  # the whole pack gone: every tree is None, nothing raises
    assert repo.load_trees(ids) == [None] * len(ids)


def test_parent_trees_in_walk_order_uses_few_loads_and_holds_a_bounded_number(
    repo: Repository, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    _make(src, dirs=40, depth=4)
    snap = _backup(repo, src).snapshot
    order = _walk_order(repo, _tree_of(repo, snap.tree, src))
    calls: list[int] = []

    def load(ids: list[bytes]) -> list[list[Node] | None]:
        calls.append(len(ids))
        return [t.nodes if t else None for t in repo.load_trees(ids)]

    trees = ParentTrees(load, batch=16, held=32)  # type: ignore[arg-type]
    held = 0
    for key, tid in order:
        trees.passed(key)
        assert trees.nodes(key, tid) == repo.load_tree(tid).nodes
        held = max(held, len(trees._loaded))
    assert len(order) == 1 + 40 * 4 + 2
    assert trees.loads == len(calls) < len(order) // 4  # batched
    assert max(calls) <= 16 and held <= 32
    assert trees._loaded == {}  # everything handed out


def test_parent_trees_skipped_directories_are_dropped_and_a_changed_id_is_loaded(
    repo: Repository, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    _make(src, dirs=6, depth=2)
    snap = _backup(repo, src).snapshot
    order = _walk_order(repo, _tree_of(repo, snap.tree, src))

    def load(ids: list[bytes]) -> list[list[Node] | None]:
        return [t.nodes if t else None for t in repo.load_trees(ids)]

    trees = ParentTrees(load)  # type: ignore[arg-type]
    (root_key, root_id), rest = order[0], order[1:]
    assert trees.nodes(root_key, root_id) == repo.load_tree(root_id).nodes
    wanted = [kt for kt in rest if not kt[0][-1].startswith(b"top02")]  # the walker skips a subtree
    for key, tid in wanted[:-1]:
        trees.passed(key)
        assert trees.nodes(key, tid) == repo.load_tree(tid).nodes
    key, _ = wanted[-1]
    other = order[1][1]  # a different tree than the one the walk learned for this key
    assert trees.nodes(key, other) == repo.load_tree(other).nodes
    trees.passed((*root_key, b"\xff"))
    assert trees._loaded == {}


def test_damaged_parent_tree_costs_a_reread_and_gives_the_same_snapshot(
    repo_path: Path, tmp_path: Path
) -> None:
    init_repository(open_backend(str(repo_path)), PASSWORD.encode()).close()
    src = tmp_path / "src"
    _make(src, dirs=5, depth=3)
    repo = _reopen(repo_path)
    first = _backup(repo, src)
    order = _walk_order(repo, _tree_of(repo, first.snapshot.tree, src))
    victim = next(t for k, t in order if k == (b"top03",))
    loc = repo.blobs.index.lookup(victim)
    assert loc is not None
    repo.close()
    path = _pack_file(repo_path, loc.pack)
    data = bytearray(path.read_bytes())
    data[loc.offset + 3] ^= 0x55
    path.write_bytes(bytes(data))

    repo = _reopen(repo_path)
    try:
        second = _backup(repo, src)
        s = second.snapshot.summary
        # top03's parent tree is unreadable, so its files and those below it are read again
        assert s.files_new == 3 and s.files_unmodified == 5 * 3 - 3
        assert s.data_blobs_added == 0  # ... and deduplicate
        assert s.tree_blobs_added <= len(src.parts)  # at most the ancestors, which others may touch
        # identical content, identical IDs (the damaged blob stays referenced: check reports it)
        assert _tree_of(repo, second.snapshot.tree, src) == order[0][1]
    finally:
        repo.close()


@pytest.mark.parametrize("prewarm", [False, True])
def test_archive_with_and_without_the_prewarm_helper_agree(
    repo: Repository, tmp_path: Path, prewarm: bool
) -> None:
    src = tmp_path / "src"
    _make(src, dirs=30, depth=3)
    first = _backup(repo, src)
    opts = ArchiveOptions(prewarm=prewarm)
    archiver = Archiver(repo.blobs, repo, content_reader(repo, NullProgress()), opts)
    result = archiver.archive([os.fsencode(src)], first.snapshot.tree)
    repo.blobs.flush()
    assert result.summary.files_unmodified == 30 * 3 and result.summary.files_new == 0
    assert result.summary.dirs == first.snapshot.summary.dirs
    assert _tree_of(repo, result.tree, src) == _tree_of(repo, first.snapshot.tree, src)
