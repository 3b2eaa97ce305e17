"""amber migrate: the frozen version-1 repository becomes format 2; a crash at any write leaves it usable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from amber.errors import AppendOnlyViolation
from amber.repository import Repository, init_repository, open_repository
from amber.repository.repo import RepoConfig
from amber.repository.sealing import Kind
from amber.services.check import check
from amber.services.migrate import migrate
from amber.services.restore import RestoreRequest, restore
from amber.storage import open_backend
from amber.storage.base import Backend, FileType, Handle
from amber.storage.forwarding import ForwardingBackend
from tests.conftest import PASSWORD
from tests.repository.test_format_guard import (
    MANIFEST,
    restored_state,
    unpack_v1,
    v1_cli,
)

V1_PASSWORD = MANIFEST["password"].encode()


class _Crash(BaseException):
    """Stands for the process dying: nothing below catches it."""


class CrashingBackend(ForwardingBackend):
    """Passes everything through, but fails the ``crash_at``-th save or remove (1-based) once."""

    def __init__(self, inner: Backend, crash_at: int | None = None) -> None:
        super().__init__(inner)
        self.crash_at = crash_at
        self.writes = 0

    def _write(self) -> None:
        self.writes += 1
        if self.writes == self.crash_at:
            raise _Crash(f"crash before write {self.writes}")

    def save(self, handle: Handle, data: bytes | bytearray | memoryview) -> None:
        if handle.type is not FileType.LOCK:
            self._write()
        self.inner.save(handle, data)

    def remove(self, handle: Handle) -> None:
        if handle.type is not FileType.LOCK:
            self._write()
        self.inner.remove(handle)


def _open(path: Path, crash_at: int | None = None) -> tuple[Repository, CrashingBackend]:
    backend = CrashingBackend(open_backend(str(path)), crash_at)
    return open_repository(backend, V1_PASSWORD), backend  # type: ignore[arg-type]


def _restores_as_recorded(repo: Repository, tmp: Path, twins: bool = False) -> None:
    """Every snapshot restores byte for byte as the one it was migrated from (its ``original``).
    ``twins``: a crash may leave a snapshot and its rewritten copy side by side."""
    expected = {s["id"]: s for s in MANIFEST["snapshots"]}
    snaps = repo.snapshots()
    identities = [s.original or sid for sid, s in snaps.items()]
    assert set(identities) == set(expected)
    assert twins or len(identities) == len(expected)
    for i, (sid, identity) in enumerate(zip(snaps, identities, strict=True)):
        target = tmp / f"r{i}"
        result = restore(repo, RestoreRequest(sid, str(target)))
        assert not result.errors
        want = expected[identity]
        assert restored_state(target / want["path"].lstrip("/")) == want["files"]


def _format_1_objects(repo: Repository) -> list[str]:
    """Objects that do not open bound to their kind (with a strict format-2 reader)."""
    from amber.repository.sealing import Sealer

    strict = Sealer(repo.key, 2)
    left = []
    kinds = ((FileType.SNAPSHOT, Kind.SNAPSHOT), (FileType.INDEX, Kind.INDEX), (FileType.AUDIT, Kind.AUDIT))
    for type_, kind in kinds:
        for fi in repo.backend.list(type_):
            try:
                strict.open(kind, repo.backend.load(Handle(type_, fi.name)))
            except Exception:
                left.append(f"{type_.value}/{fi.name}")
    for fi in repo.backend.list(FileType.PACK):
        try:
            repo.blobs.read_pack(fi.name)
        except Exception:
            left.append(f"data/{fi.name}")
    return left


def test_migrate_the_frozen_v1_repository(tmp_path: Path) -> None:
    path = unpack_v1(tmp_path) / "repo"
    repo, _ = _open(path)
    assert repo.config.version == 1
    outcome = migrate(repo)
    assert outcome.complete and not outcome.result.problems
    assert repo.config == RepoConfig(**{**_fields(repo.config), "version": 3, "migrating": False})
    old_ids = {s["id"] for s in MANIFEST["snapshots"]}
    assert set(outcome.result.snapshots_rewritten) == old_ids
    assert {s.original for s in repo.snapshots().values()} == old_ids  # copies stay recognised
    first, second = (outcome.result.snapshots_rewritten[s["id"]] for s in MANIFEST["snapshots"])
    assert repo.load_snapshot(second).parent == first  # the parent link follows the new IDs
    repo.close()

    repo, _ = _open(path)
    assert (repo.config.version, repo.config.migrating) == (3, False)
    assert _format_1_objects(repo) == []
    report = check(repo, read_data=True)
    assert report.ok and not report.warnings, (report.errors, report.warnings)
    _restores_as_recorded(repo, tmp_path)
    assert migrate(repo).complete  # nothing left: a second run is a no-op
    repo.close()


@pytest.mark.slow  # seven CLI runs
def test_after_migration_the_cli_checks_restores_and_backs_up(tmp_path: Path) -> None:
    cli = v1_cli(tmp_path)
    dry = cli.run("migrate", "--dry-run").stdout
    assert "4 (" in dry and "2 to rewrite" in dry
    assert "format version 3" in cli.run("migrate").stdout
    assert "no errors found" in cli.run("check", "--read-data").stdout
    src = tmp_path / "more"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_bytes(os.urandom(70_000))
    cli.run("backup", str(src))
    cli.run("restore", "latest", "--target", str(tmp_path / "new"))
    restored = tmp_path / "new" / str(src).lstrip("/") / "d" / "f"
    assert restored.read_bytes() == (src / "d" / "f").read_bytes()
    assert "no errors found" in cli.run("check", "--read-data").stdout
    assert "nothing to do" in cli.run("migrate").stdout


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    path = unpack_v1(tmp_path) / "repo"
    before = sorted(p.relative_to(path) for p in path.rglob("*") if p.is_file())
    repo, _ = _open(path)
    outcome = migrate(repo, dry_run=True)
    assert len(outcome.survey.packs) == 4 and len(outcome.survey.snapshots) == 2
    assert repo.config.version == 1
    repo.close()
    after = sorted(p.relative_to(path) for p in path.rglob("*") if p.is_file() and "locks" not in p.parts)
    assert after == before


def _writes_of_a_full_migration(tmp_path: Path) -> int:
    repo, backend = _open(unpack_v1(tmp_path / "count") / "repo")
    migrate(repo)
    repo.close()
    return backend.writes


@pytest.mark.slow
def test_a_crash_at_any_write_leaves_a_repository_that_restores(tmp_path: Path) -> None:
    total = _writes_of_a_full_migration(tmp_path)
    assert total > 10
    for crash_at in range(1, total + 1):
        work = tmp_path / str(crash_at)
        path = unpack_v1(work) / "repo"
        repo, _ = _open(path, crash_at)
        with pytest.raises(_Crash):
            migrate(repo)
        repo.close()
        repo, _ = _open(path)  # opens, lists and restores in whatever state it was left
        _restores_as_recorded(repo, work / "crashed", twins=True)
        outcome = migrate(repo)  # and running migrate again completes it
        assert outcome.complete, (crash_at, outcome.result.problems)
        repo.close()
        repo, _ = _open(path)
        assert _format_1_objects(repo) == [], crash_at
        report = check(repo, read_data=True)
        assert report.ok, (crash_at, report.errors)
        _restores_as_recorded(repo, work)
        assert sorted(s.original for s in repo.snapshots().values()) == sorted(
            s["id"] for s in MANIFEST["snapshots"]
        ), crash_at
        repo.close()


def test_a_backup_in_the_middle_of_a_migration_is_kept(tmp_path: Path) -> None:
    """After a crash, clients work with the half-migrated repository; migrate takes their objects along."""
    from amber.services.backup import BackupRequest, backup_paths

    path = unpack_v1(tmp_path) / "repo"
    repo, _ = _open(path, crash_at=4)
    with pytest.raises(_Crash):
        migrate(repo)
    repo.close()
    src = tmp_path / "src"
    src.mkdir()
    (src / "x").write_bytes(b"written while migrating\n" * 1000)
    repo, _ = _open(path)
    assert repo.config.migrating
    with repo.lock():
        sid = backup_paths(repo, BackupRequest(paths=[str(src)], workers=1)).snapshot_id
    assert migrate(repo).complete
    repo.close()
    repo, _ = _open(path)
    assert len(repo.snapshots()) == 3
    assert check(repo, read_data=True).ok
    new_id = next(n for n, s in repo.snapshots().items() if s.original == sid or n == sid)
    restore(repo, RestoreRequest(new_id, str(tmp_path / "t")))
    assert (tmp_path / "t" / str(src).lstrip("/") / "x").read_bytes() == (src / "x").read_bytes()
    repo.close()


def test_a_damaged_repository_stays_migrating_and_readable(tmp_path: Path) -> None:
    path = unpack_v1(tmp_path) / "damaged"
    repo, _ = _open(path)
    outcome = migrate(repo)
    assert not outcome.complete
    assert any(MANIFEST["damage"]["removed_pack"][:16] in p for p in outcome.result.problems)
    repo.close()
    repo, _ = _open(path)
    assert (repo.config.version, repo.config.migrating) == (2, True)
    assert len(repo.snapshots()) == 2
    assert any("migration has not finished" in w for w in check(repo).warnings)
    repo.close()


def test_an_append_only_repository_is_refused(tmp_path: Path) -> None:
    init_repository(open_backend(str(tmp_path / "r")), PASSWORD.encode(), append_only=True, version=1).close()
    repo = open_repository(open_backend(str(tmp_path / "r")), PASSWORD.encode())
    with pytest.raises(AppendOnlyViolation):
        migrate(repo)
    assert migrate(repo, dry_run=True).dry_run
    repo.close()


def _fields(config: RepoConfig) -> dict[str, object]:
    return {f: getattr(config, f) for f in config.__struct_fields__}


def test_packs_of_a_lost_index_file_are_adopted(tmp_path: Path) -> None:
    """An index file lost before the migration leaves format-1 packs in no index: their blobs are
    rewritten and indexed, so the snapshot that needs them restores afterwards."""
    path = unpack_v1(tmp_path) / "repo"
    index_files = sorted((path / "index").iterdir(), key=lambda p: len(p.read_bytes()))
    index_files[0].unlink()
    repo, _ = _open(path)
    assert migrate(repo).complete
    repo.close()
    repo, _ = _open(path)
    assert _format_1_objects(repo) == []
    report = check(repo, read_data=True)
    assert report.ok and not report.warnings, (report.errors, report.warnings)
    _restores_as_recorded(repo, tmp_path)
    repo.close()


def test_a_pack_listed_by_two_index_files_is_kept_until_both_are_done(tmp_path: Path) -> None:
    """As after a format-1 prune that crashed between writing a replacement and removing the old file."""
    from amber.repository.index import encode_index
    from amber.repository.pack import pack_id
    from amber.repository.sealing import Sealer

    path = unpack_v1(tmp_path) / "repo"
    repo, _ = _open(path)
    packs = {p: repo.blobs.read_pack(p)[1] for p in repo.blobs.index.packs()}
    raw = Sealer(repo.key, 1).seal(Kind.INDEX, encode_index(packs))
    repo.backend.save(Handle(FileType.INDEX, pack_id(raw)), raw)
    repo.close()
    repo, _ = _open(path)
    assert len(repo.blobs.index_files) == 3
    assert migrate(repo).complete
    repo.close()
    repo, _ = _open(path)
    assert check(repo, read_data=True).ok
    _restores_as_recorded(repo, tmp_path)
    repo.close()


def test_a_version_1_repository_is_written_in_format_1_until_migrated(tmp_path: Path) -> None:
    from amber.repository.sealing import Sealer
    from amber.services.backup import BackupRequest, backup_paths

    path = unpack_v1(tmp_path) / "repo"
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(os.urandom(20_000))
    repo, _ = _open(path)
    with repo.lock():
        backup_paths(repo, BackupRequest(paths=[str(src)], workers=1))
    repo.close()
    repo, _ = _open(path)
    assert repo.config.version == 1
    v1 = Sealer(repo.key, 1)  # every object still opens without binding
    for fi in repo.backend.list(FileType.SNAPSHOT):
        v1.open(Kind.SNAPSHOT, repo.backend.load(Handle(FileType.SNAPSHOT, fi.name)))
    for fi in repo.backend.list(FileType.INDEX):
        v1.open(Kind.INDEX, repo.backend.load(Handle(FileType.INDEX, fi.name)))
    assert check(repo, read_data=True).ok
    assert migrate(repo).complete  # and it migrates like the rest
    repo.close()
