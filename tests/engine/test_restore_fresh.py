"""The lean path for new one-blob files: damage is reported per file, the rest is restored.

These restores use the forked writer's batch interface in this process (``write_now``,
as a worker does): the batches are small enough to be written inline.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from amber.engine import restore_fresh
from amber.engine.restorer import RestoreOptions, Restorer, RestoreResult
from amber.repository import Node, Repository
from amber.services.backup import BackupRequest, backup_paths
from amber.services.snapshots import SnapshotFilter, resolve
from amber.storage.base import FileType, Handle


def _backup(repo: Repository, src: Path, files: dict[str, bytes]) -> dict[str, Node]:
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    backup_paths(repo, BackupRequest(paths=[str(src)]))
    _, snap = resolve(repo, "latest", SnapshotFilter())
    nodes: dict[str, Node] = {}

    def walk(tree_id: bytes, rel: str) -> None:
        for n in repo.load_tree(tree_id).nodes:
            path = f"{rel}/{n.name.decode()}"
            if n.type == "dir":
                walk(n.subtree, path)
            else:
                nodes[path] = n

    walk(snap.tree, "")
    return {p.removeprefix(str(src)): n for p, n in nodes.items() if p.startswith(str(src))}


def _restore(repo: Repository, src: Path, target: Path) -> RestoreResult:
    _, snap = resolve(repo, "latest", SnapshotFilter())
    tree_id = snap.tree
    for name in str(src).strip("/").split("/"):
        tree_id = next(n for n in repo.load_tree(tree_id).nodes if n.name == name.encode()).subtree
    restorer = Restorer(repo.load_tree, repo.blobs, RestoreOptions(processes=2), blob_id=repo.key.blob_id)
    return restorer.restore_tree(tree_id, os.fsencode(target))


def _flip(repo: Repository, node: Node) -> str:
    """Flip a byte inside the stored blob of ``node``; returns its pack."""
    loc = repo.blobs.locate(node.content[0])
    path = Path(repo.backend.location) / "data" / loc.pack[:2] / loc.pack  # type: ignore[attr-defined]
    raw = bytearray(path.read_bytes())
    raw[loc.offset + loc.length // 2] ^= 0xFF
    os.chmod(path, 0o600)
    path.write_bytes(bytes(raw))
    return loc.pack


FILES = {
    "a/one": b"one\n" * 100,
    "a/copy-of-one": b"one\n" * 100,  # the same blob: deduplicated
    "a/two": b"two\n" * 77,
    "b/three": os.urandom(3000),
    "b/empty": b"",
}


@pytest.fixture
def inline(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the files the lean path was given (so these tests cannot pass without it)."""
    given: list[int] = []
    write = restore_fresh.FreshWriter.write

    def counting(self: restore_fresh.FreshWriter, files: list[object]) -> None:
        given.append(len(files))
        write(self, files)  # type: ignore[arg-type]

    monkeypatch.setattr(restore_fresh.FreshWriter, "write", counting)
    return given


def test_every_file_is_restored_deduplicated_ones_too(
    repo: Repository, tmp_path: Path, inline: list[int]
) -> None:
    src = tmp_path / "src"
    _backup(repo, src, FILES)
    result = _restore(repo, src, tmp_path / "t")
    assert not result.errors and result.files == len(FILES)
    assert sum(inline) == len(FILES) - 1  # all but the empty file
    for rel, data in FILES.items():
        assert (tmp_path / "t" / rel).read_bytes() == data


def test_a_damaged_blob_fails_each_of_its_files_and_nothing_else(
    repo: Repository, tmp_path: Path, inline: list[int]
) -> None:
    src = tmp_path / "src"
    nodes = _backup(repo, src, FILES)
    _flip(repo, nodes["/a/one"])
    result = _restore(repo, src, tmp_path / "t")
    assert result.damaged == 2  # one and its deduplicated copy
    assert sorted(e.split(": ")[0] for e in result.errors) == sorted(
        str(tmp_path / "t" / rel) for rel in ("a/one", "a/copy-of-one")
    )
    assert all("damaged data" in e for e in result.errors)
    for rel in ("a/two", "b/three", "b/empty"):
        assert (tmp_path / "t" / rel).read_bytes() == FILES[rel]
    assert inline


def test_a_missing_pack_fails_every_file_it_held(repo: Repository, tmp_path: Path, inline: list[int]) -> None:
    src = tmp_path / "src"
    nodes = _backup(repo, src, FILES)
    pack = repo.blobs.locate(nodes["/b/three"].content[0]).pack
    repo.backend.remove(Handle(FileType.PACK, pack))
    result = _restore(repo, src, tmp_path / "t")
    held = [rel for rel, n in nodes.items() if n.content and repo.blobs.locate(n.content[0]).pack == pack]
    assert held and result.damaged == len(held)
    expected = sorted(str(tmp_path / "t" / rel.lstrip("/")) for rel in held)
    assert sorted(e.split(": ")[0] for e in result.errors) == expected
    assert inline
