"""What stops prune from deleting data still needed, each made to happen on cue.

* The freshness check: prune deletes nothing once its own lease could have
  lapsed (an injected clock ages the lease; no waiting).
* The phase-2 re-walk: a backup that loaded the index before the mark, wrote
  its snapshot and left before the mark, deduplicated against packs prune is
  about to delete. A backend wrapper runs that backup at the moment prune
  starts rewriting the index.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import blake3
import pytest

from amber.engine.pruner import PruneOptions, Pruner
from amber.errors import RepositoryLocked
from amber.repository import Repository, init_repository, open_repository
from amber.repository.crypto import KdfParams
from amber.repository.lock import LEASE_S, REFRESH_S, Lock
from amber.services import check as check_service
from amber.services import prune as prune_service
from amber.services.backup import BackupRequest, backup_paths
from amber.services.restore import RestoreRequest, restore
from amber.storage import open_backend
from amber.storage.base import Backend, FileType, Handle
from tests.conftest import PASSWORD


class OnFirstIndexWrite:
    """A backend that calls ``hook`` once, just before the first index file is written or removed."""

    def __init__(self, inner: Backend, hook: Callable[[], None]) -> None:
        self.inner = inner
        self._hook: Callable[[], None] | None = hook

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _maybe(self, handle: Handle) -> None:
        if handle.type is FileType.INDEX and self._hook is not None:
            hook, self._hook = self._hook, None
            hook()

    def save(self, handle: Handle, data: bytes | bytearray | memoryview) -> None:
        self._maybe(handle)
        self.inner.save(handle, data)

    def remove(self, handle: Handle) -> None:
        self._maybe(handle)
        self.inner.remove(handle)


@pytest.fixture
def repo_dir(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    init_repository(open_backend(str(path)), PASSWORD.encode(), KdfParams(1, 1024, 1)).close()
    return path


def _open(path: Path, backend: Any = None) -> Repository:
    return open_repository(backend or open_backend(str(path)), PASSWORD.encode())


def _tree(src: Path) -> dict[str, bytes]:
    files = {f"f{i}": blake3.blake3(b"%d" % i).digest(length=200_000) for i in range(4)}
    src.mkdir()
    for name, data in files.items():
        (src / name).write_bytes(data)
    os.listdir(src)  # relatime: the first listing moves a new directory's atime, once
    return files


def _backup(repo: Repository, src: Path) -> str:
    with repo.lock():
        return backup_paths(repo, BackupRequest(paths=[str(src)])).snapshot_id


def _packs(path: Path) -> set[str]:
    return {p.name for p in (path / "data").glob("*/*") if not p.name.startswith(".")}


def _forget_all(path: Path) -> None:
    for snap in (path / "snapshots").iterdir():
        snap.unlink()


def test_prune_deletes_nothing_once_its_lease_may_have_lapsed(repo_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    _tree(src)
    repo = _open(repo_dir)
    try:
        _backup(repo, src)
        _forget_all(repo_dir)
        packs = _packs(repo_dir)
        start = time.time()
        lock = Lock(repo.backend, repo.key.encrypt, repo.key.decrypt, False, True, clock=lambda: start)
        lock.acquire()
        try:
            late = Pruner(
                repo, lock, PruneOptions(max_unused="0%"), clock=lambda: start + LEASE_S - REFRESH_S
            )
            with pytest.raises(RepositoryLocked, match="not refreshed in time"):
                late.run()
            assert _packs(repo_dir) == packs  # marked, not deleted

            in_time = Pruner(
                repo, lock, PruneOptions(max_unused="0%"), clock=lambda: start + LEASE_S - REFRESH_S - 1
            )
            result = in_time.run()  # finishes the marker the late run left
            assert result.deleted_packs == len(packs) and not _packs(repo_dir) & packs
        finally:
            lock.release()
    finally:
        repo.close()


@pytest.mark.parametrize("adds_content", [False, True], ids=["dedup-only", "new-packs-too"])
def test_phase_two_rewalks_snapshots_written_before_the_mark(
    repo_dir: Path, tmp_path: Path, adds_content: bool
) -> None:
    """A backup during prune: only dedup hits into doomed packs, or also new packs and an
    index file prune never loaded (phase 2 must read it to walk that snapshot)."""
    src = tmp_path / "src"
    files = _tree(src)
    first = _open(repo_dir)
    try:
        _backup(first, src)
    finally:
        first.close()
    _forget_all(repo_dir)  # every pack is now unreferenced: prune will doom them all
    late = _open(repo_dir)  # a backup that loaded the index before prune rewrote it
    written: list[str] = []

    def backup_meanwhile() -> None:
        if adds_content:
            (src / "added-during-prune").write_bytes(os.urandom(3000))
            files["added-during-prune"] = (src / "added-during-prune").read_bytes()
        written.append(_backup(late, src))  # deduplicates against the doomed packs, then leaves

    pruner_repo = _open(repo_dir, OnFirstIndexWrite(open_backend(str(repo_dir)), backup_meanwhile))
    try:
        with pruner_repo.lock(maintenance=True) as lock:
            Pruner(pruner_repo, lock, PruneOptions(max_unused="0%")).run()
    finally:
        pruner_repo.close()
        late.close()
    assert written, "the backup did not run during prune"

    repo = _open(repo_dir)
    try:
        # Phase 2 read the backup's new index file, walked its snapshot and re-indexed the
        # doomed packs it needs: the snapshot restores at once, with no second prune.
        report = check_service.check(repo, read_data=True)
        assert report.ok, report.errors
        prune_service.prune(repo, PruneOptions(max_unused="0%"))
        report = check_service.check(repo, read_data=True)
        assert report.ok, report.errors
        target = tmp_path / "restored"
        result = restore(repo, RestoreRequest(ref=written[0], target=str(target)))
        assert not result.errors
        back = target / src.relative_to("/")
        assert {p: (back / p).read_bytes() for p in os.listdir(back)} == files
    finally:
        repo.close()


class OnFirstSnapshotListing:
    """A backend that calls ``hook`` once, just before snapshots are first listed (prune's mark)."""

    def __init__(self, inner: Backend, hook: Callable[[], None]) -> None:
        self.inner = inner
        self._hook: Callable[[], None] | None = hook

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def list(self, file_type: FileType) -> Any:
        if file_type is FileType.SNAPSHOT and self._hook is not None:
            hook, self._hook = self._hook, None
            hook()
        return self.inner.list(file_type)


def test_the_mark_loads_index_files_of_a_backup_that_finished_after_the_packs_were_listed(
    repo_dir: Path, tmp_path: Path
) -> None:
    """`forget --prune` opens the repository (loading its index), forgets, then prunes. A backup
    that stores packs, index and snapshot after prune listed the packs but before it lists the
    snapshots references blobs this index lacks and packs the listing missed: prune must read the
    new index files, not stop with "blobs referenced by snapshots are missing"."""
    src = tmp_path / "src"
    files = _tree(src)
    other = _open(repo_dir)
    written: list[str] = []

    def backup_meanwhile() -> None:
        written.append(_backup(other, src))

    pruner_repo = _open(repo_dir, OnFirstSnapshotListing(open_backend(str(repo_dir)), backup_meanwhile))
    try:
        with pruner_repo.lock(maintenance=True) as lock:
            result = Pruner(pruner_repo, lock, PruneOptions(max_unused="0%")).run()
    finally:
        pruner_repo.close()
        other.close()
    assert written, "the backup did not run during prune"
    assert result.plan.doomed == [] and result.rescued_packs == 0  # read, not rescued: nothing to delete

    repo = _open(repo_dir)
    try:
        report = check_service.check(repo, read_data=True)
        assert report.ok, report.errors
        target = tmp_path / "restored"
        assert not restore(repo, RestoreRequest(ref=written[0], target=str(target))).errors
        back = target / src.relative_to("/")
        assert {p: (back / p).read_bytes() for p in os.listdir(back)} == files
    finally:
        repo.close()
