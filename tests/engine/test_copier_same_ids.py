"""Copies between repositories that share the ID key (init --copy-chunker-params)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from amber.engine.copier import CopyOptions
from amber.repository import BlobType, Repository, init_repository
from amber.services.backup import BackupRequest, backup_paths
from amber.services.check import check
from amber.services.copy import copy_snapshots
from amber.storage import FileType, open_backend
from tests.engine.test_copier import FAST_KDF, PW, backup, files_of, make_tree, new_repo, open_repo, restored


@pytest.fixture
def twins(tmp_path: Path) -> Iterator[tuple[Repository, Repository, Path]]:
    a = new_repo(tmp_path / "a")
    init_repository(open_backend(str(tmp_path / "b")), PW, FAST_KDF, ids_from=a).close()
    b = open_repo(tmp_path / "b")
    yield a, b, make_tree(tmp_path / "src")
    a.close()
    b.close()


def flip_byte_in_biggest_pack(repo: Repository, path: Path, offset: int) -> None:
    """Damage one data blob of ``repo`` (at ``path``) on disk."""
    big = max(repo.backend.list(FileType.PACK), key=lambda fi: fi.size)
    pack = next((path / "data").rglob(big.name))
    os.chmod(pack, 0o600)
    with open(pack, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 1]))


def blob_ids(repo: Repository) -> dict[bytes, BlobType]:
    return {blob_id: loc.type for blob_id, loc in repo.blobs.index.blobs()}


def test_shared_ids_but_own_encryption_key(twins: tuple[Repository, Repository, Path],
                                           tmp_path: Path) -> None:  # fmt: skip
    a, b, _ = twins
    assert a.shares_blob_ids(b) and b.key.chunker_seed == a.key.chunker_seed
    assert b.key.encrypt_key != a.key.encrypt_key
    other = new_repo(tmp_path / "other")
    assert not a.shares_blob_ids(other)


def test_copy_keeps_ids_and_restores(twins: tuple[Repository, Repository, Path], tmp_path: Path) -> None:
    a, b, src = twins
    sid = backup(a, src)
    result = copy_snapshots(a, b)
    assert [s for s, _ in result.copied] == [sid] and not result.failed
    b = open_repo(tmp_path / "b")
    copy = b.load_snapshot(result.copied[0][1])
    assert copy.tree == a.load_snapshot(sid).tree  # trees are copied, not rewritten
    assert blob_ids(b) == blob_ids(a)  # every blob, trees included, under the same ID
    assert result.stats.trees_added == sum(1 for t in blob_ids(a).values() if t is BlobType.TREE)
    assert restored(b, result.copied[0][1], tmp_path / "out", src) == files_of(src)
    report = check(b, read_data=True)
    assert report.ok and not report.warnings, (report.errors, report.warnings)
    packs_a = {fi.name for fi in a.backend.list(FileType.PACK)}
    assert not packs_a & {fi.name for fi in b.backend.list(FileType.PACK)}  # re-encrypted with b's key


def test_direct_backup_dedups_with_copied_data(twins: tuple[Repository, Repository, Path],
                                               tmp_path: Path) -> None:  # fmt: skip
    """The point of sharing the chunker: the destination's own backups reuse copied chunks."""
    a, b, src = twins
    backup(a, src)
    copy_snapshots(a, b)
    b = open_repo(tmp_path / "b")
    summary = backup_paths(b, BackupRequest(paths=[str(src)], force=True)).snapshot.summary
    assert summary.data_blobs_added == 0 and summary.data_added == 0


def test_incremental_copy_reads_only_new_blobs(twins: tuple[Repository, Repository, Path],
                                               tmp_path: Path) -> None:  # fmt: skip
    a, b, src = twins
    backup(a, src)
    first = copy_snapshots(a, b).stats
    (src / "docs" / "small-5.txt").write_bytes(b"changed")
    (src / "docs" / "new.txt").write_bytes(b"brand new")
    second = backup(a, src)
    result = copy_snapshots(a, open_repo(tmp_path / "b"), options=CopyOptions(workers=2, batch_blobs=2))
    assert [s for s, _ in result.copied] == [second]
    assert result.stats.blobs_read == 2 and result.stats.blobs_added == 2
    assert result.stats.trees < first.trees  # the unchanged deep subtree was not descended
    b = open_repo(tmp_path / "b")
    assert restored(b, result.copied[0][1], tmp_path / "out", src) == files_of(src)
    assert check(b, read_data=True).ok


def test_damaged_source_blob_is_not_copied(twins: tuple[Repository, Repository, Path],
                                           tmp_path: Path) -> None:  # fmt: skip
    """IDs are kept, yet every blob is still verified against its ID before it is stored."""
    a, b, src = twins
    backup(a, src)
    flip_byte_in_biggest_pack(a, tmp_path / "a", 100)
    result = copy_snapshots(open_repo(tmp_path / "a"), b)
    assert result.copied == [] and len(result.failed) == 1
    b = open_repo(tmp_path / "b")
    assert b.snapshot_names() == []
    assert check(b, read_data=True).ok
