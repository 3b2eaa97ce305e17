"""Re-backups that reuse the parent snapshot: unchanged nodes and whole subtrees.

An unchanged directory keeps its tree ID without re-encoding it; a change deep
down gives new IDs exactly along the path to the root; a tree blob that left
the index is written again (the repository heals) instead of being trusted.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from amber.engine.checker import Checker
from amber.repository import Repository, Tree, init_repository, open_repository
from amber.repository.index import encode_index
from amber.repository.pack import pack_id
from amber.repository.sealing import Kind
from amber.services.backup import BackupOutcome, BackupRequest, backup_paths
from amber.storage import open_backend
from amber.storage.base import FileType, Handle
from tests.conftest import PASSWORD

FILES = {
    "a/b/c/deep.txt": b"deep\n" * 100,
    "a/b/c/other.txt": b"other\n" * 10,
    "a/b/side.txt": b"side\n",
    "a/x/y.txt": b"sibling subtree\n" * 40,
    "top.txt": b"top\n",
    "z/empty": b"",
}


def _make(src: Path) -> None:
    for rel, data in FILES.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    for _ in os.walk(src):  # relatime: the first listing moves a new directory's atime, once
        pass


def _backup(repo: Repository, src: Path) -> BackupOutcome:
    with repo.lock():
        return backup_paths(repo, BackupRequest(paths=[str(src)]))


def _subtrees(repo: Repository, tree_id: bytes, src: Path) -> dict[str, bytes]:
    """Tree ID of ``src`` and of every directory below it, by path relative to ``src``."""
    tree: Tree = repo.load_tree(tree_id)
    for part in src.parts[1:]:
        tree_id = next(n.subtree for n in tree.nodes if n.name == os.fsencode(part))
        tree = repo.load_tree(tree_id)
    out = {".": tree_id}
    stack = [(Path("."), tree)]
    while stack:
        rel, t = stack.pop()
        for n in t.nodes:
            if n.type == "dir":
                out[str(rel / os.fsdecode(n.name))] = n.subtree
                stack.append((rel / os.fsdecode(n.name), repo.load_tree(n.subtree)))
    return out


def _reopen(repo_path: Path) -> Repository:
    return open_repository(open_backend(str(repo_path)), PASSWORD.encode())


def test_unchanged_tree_keeps_every_id_and_writes_no_tree(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    _make(src)
    first = _backup(repo, src)
    second = _backup(repo, src)
    s = second.snapshot.summary
    assert s.files_unmodified == len(FILES) and s.files_new == s.files_changed == 0
    assert s.data_blobs_added == 0
    assert s.tree_blobs_added <= len(src.parts)  # at most the ancestors, which others may touch
    before = _subtrees(repo, first.snapshot.tree, src)
    assert _subtrees(repo, second.snapshot.tree, src) == before
    assert len(before) == 6  # ., a, a/b, a/b/c, a/x, z


def test_change_deep_down_renews_ids_along_its_path_only(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    _make(src)
    first = _subtrees(repo, _backup(repo, src).snapshot.tree, src)
    (src / "a/b/c/deep.txt").write_bytes(b"changed\n")
    out = _backup(repo, src)
    assert out.snapshot.summary.files_changed == 1
    assert out.snapshot.summary.files_unmodified == len(FILES) - 1
    second = _subtrees(repo, out.snapshot.tree, src)
    changed = {p for p in first if first[p] != second[p]}
    assert changed == {".", "a", "a/b", "a/b/c"}
    content = repo.load_tree(second["a/b/c"]).nodes[0]
    assert content.name == b"deep.txt"
    assert content.sha256 == hashlib.sha256(b"changed\n").digest()


def test_metadata_change_of_a_file_renews_its_tree(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    _make(src)
    first = _subtrees(repo, _backup(repo, src).snapshot.tree, src)
    os.chmod(src / "a/x/y.txt", 0o600)
    out = _backup(repo, src)
    second = _subtrees(repo, out.snapshot.tree, src)
    assert {p for p in first if first[p] != second[p]} == {".", "a", "a/x"}
    node = repo.load_tree(second["a/x"]).nodes[0]
    assert node.mode == 0o600 and node.content  # content reused, mode refreshed


def _drop_from_index(repo_path: Path, blob_id: bytes) -> None:
    """Rewrite the index from the packs, leaving out one blob (what repair leaves after damage)."""
    repo = _reopen(repo_path)
    backend = repo.backend
    try:
        packs = {}
        for fi in backend.list(FileType.PACK):
            _, blobs = repo.blobs.read_pack(fi.name)
            packs[fi.name] = [b for b in blobs if b.id != blob_id]
        for fi in list(backend.list(FileType.INDEX)):
            backend.remove(Handle(FileType.INDEX, fi.name))
        data = repo.sealer.seal(Kind.INDEX, encode_index(packs))
        backend.save(Handle(FileType.INDEX, pack_id(data)), data)
    finally:
        repo.close()


def test_subtree_missing_from_index_is_written_again(repo_path: Path, tmp_path: Path) -> None:
    init_repository(open_backend(str(repo_path)), PASSWORD.encode()).close()
    src = tmp_path / "src"
    _make(src)
    repo = _reopen(repo_path)
    first = _backup(repo, src)
    lost = _subtrees(repo, first.snapshot.tree, src)["a/b/c"]
    repo.close()
    _drop_from_index(repo_path, lost)

    repo = _reopen(repo_path)
    try:
        assert not repo.blobs.has(lost)
        second = _backup(repo, src)
        assert second.snapshot.summary.tree_blobs_added >= 1
        assert repo.blobs.has(lost)  # the same tree, stored again
        assert _subtrees(repo, second.snapshot.tree, src)["a/b/c"] == lost
    finally:
        repo.close()
    repo = _reopen(repo_path)
    try:
        report = Checker(repo).run(read_data=True)
        assert not report.errors, report.errors
    finally:
        repo.close()


def test_wide_directory_is_listed_completely(repo: Repository, tmp_path: Path) -> None:
    """More subdirectories than are listed ahead at once (the window slides as the walk goes)."""
    src = tmp_path / "src"
    for i in range(70):
        (src / f"d{i:03}" / "inner").mkdir(parents=True)
        (src / f"d{i:03}" / "inner" / "f.txt").write_bytes(b"%d\n" % i)
    for _ in os.walk(src):
        pass
    first = _backup(repo, src)
    assert first.snapshot.summary.files_new == 70
    assert first.snapshot.summary.dirs >= 140
    second = _backup(repo, src)
    assert second.snapshot.summary.files_unmodified == 70
    ids = _subtrees(repo, second.snapshot.tree, src)
    assert len(ids) == 141 and ids == _subtrees(repo, first.snapshot.tree, src)
    leaf = repo.load_tree(ids["d069/inner"]).nodes
    assert [n.name for n in leaf] == [b"f.txt"] and leaf[0].size == 3
