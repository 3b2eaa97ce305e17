"""A replayed index file (issue 11): put back after forget and prune, it must not make a backup
reference deleted data. ``supersedes`` hides it from every reader; a backup also ignores index
entries whose pack is gone (design §8, §12)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from amber.repository import Repository, open_repository
from amber.repository.index import decode_index
from amber.repository.sealing import Kind
from amber.services.backup import BackupRequest, backup_paths
from amber.services.check import check
from amber.services.forget import ForgetRequest, forget
from amber.services.prune import prune
from amber.services.restore import RestoreRequest, restore
from amber.storage import open_backend
from amber.storage.base import FileType, Handle
from tests.conftest import PASSWORD


def _backup(repo: Repository, src: Path) -> str:
    with repo.lock():
        return backup_paths(repo, BackupRequest(paths=[str(src)], workers=1)).snapshot_id


def _index_files(repo: Repository) -> dict[str, bytes]:
    return {fi.name: _raw(repo, fi.name) for fi in repo.backend.list(FileType.INDEX)}


def _replay_after_prune(repo: Repository, src: Path) -> tuple[dict[str, bytes], set[str]]:
    """Back up, keep the index files, forget everything, prune, put the old files back."""
    sid = _backup(repo, src)
    old = _index_files(repo)
    forget(repo, ForgetRequest(snapshot_ids=[sid]))
    prune(repo)
    assert not list(repo.backend.list(FileType.PACK))  # every pack is gone
    written = set(_index_files(repo))
    for name, raw in old.items():
        repo.backend.save(Handle(FileType.INDEX, name), raw)
    return old, written


def _restores(repo: Repository, sid: str, src: Path, target: Path) -> None:
    result = restore(repo, RestoreRequest(sid, str(target)))
    assert not result.errors
    for f in src.rglob("*"):
        if f.is_file():
            assert (target / str(f).lstrip("/")).read_bytes() == f.read_bytes()


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    (root / "d").mkdir(parents=True)
    (root / "d" / "big").write_bytes(os.urandom(300_000))
    (root / "small").write_bytes(b"small file\n")
    return root


def test_a_superseded_index_put_back_is_ignored(repo: Repository, src: Path, tmp_path: Path) -> None:
    old, written = _replay_after_prune(repo, src)
    # prune's last (here: only) new index file names the files it replaced
    docs = [decode_index(repo.sealer.open(Kind.INDEX, _raw(repo, name))) for name in written]
    supersedes = {n for doc in docs for n in doc.supersedes}
    assert set(old) <= supersedes
    reopened = open_repository(open_backend(str(repo.backend.location)), PASSWORD.encode())
    assert reopened.blobs.ignored_index_files == set(old)
    assert len(reopened.blobs.index) == 0
    sid = _backup(reopened, src)
    _restores(reopened, sid, src, tmp_path / "t")
    report = check(reopened, read_data=True)
    assert report.ok and not report.warnings, (report.errors, report.warnings)
    reopened.close()


def test_a_backup_ignores_index_entries_whose_pack_is_gone(
    repo: Repository, src: Path, tmp_path: Path
) -> None:
    """Without the superseding file (its record lost too), the replayed entries are read, but a
    backup does not deduplicate against them: the new snapshot is complete."""
    _, written = _replay_after_prune(repo, src)
    for name in written:
        repo.backend.remove(Handle(FileType.INDEX, name))
    reopened = open_repository(open_backend(str(repo.backend.location)), PASSWORD.encode())
    assert len(reopened.blobs.index) > 0  # the replayed entries are back
    with reopened.lock():
        outcome = backup_paths(reopened, BackupRequest(paths=[str(src)], workers=1))
    assert any("missing" in note for note in outcome.result.notes)
    _restores(reopened, outcome.snapshot_id, src, tmp_path / "t")
    report = check(reopened, read_data=True)
    assert not any("snapshot" in e or outcome.snapshot_id[:8] in e for e in report.errors if "pack" not in e)
    assert not report.damaged  # the replayed file's missing packs are reported, no snapshot is hurt
    reopened.close()


def _raw(repo: Repository, name: str) -> bytes:
    return repo.backend.load(Handle(FileType.INDEX, name))
