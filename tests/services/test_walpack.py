"""WAL as deduplicated data blobs (format 3): records, dedup and its hints, prune, check, copy,
format-2 sealed objects, and the asynchronous batch (design §12d)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from amber.engine.chunker import Chunker
from amber.errors import WalConflict
from amber.repository import Repository, init_repository, open_repository
from amber.repository.walstore import WalStore, is_record
from amber.services import check as check_service
from amber.services import wal, walasync, walspool
from amber.services.copy import copy_snapshots
from amber.services.migrate import migrate
from amber.services.prune import PruneOptions, prune
from amber.services.walhints import WalHints
from amber.storage import open_backend
from amber.storage.base import FileType, Handle
from tests.conftest import PASSWORD
from tests.services.test_wal import fake_base, seg_name, write_wal

MIB = 1 << 20


def chunk_ids(repo: Repository, data: bytes) -> list[bytes]:
    cfg = repo.config
    chunker = Chunker(cfg.chunk_avg, cfg.chunk_min, cfg.chunk_max, repo.key.chunker_seed)
    return [repo.key.blob_id(c) for c in chunker.chunks(data)]


def stored_blobs(repo: Repository) -> list[bytes]:
    """Every data blob in every pack of the repository, read from the packs' own headers."""
    found = []
    for fi in repo.backend.list(FileType.PACK):
        found += [b.id for b in repo.blobs.read_pack_header(fi.name, fi.size)]
    return found


def index_files(repo: Repository) -> set[str]:
    return {fi.name for fi in repo.backend.list(FileType.INDEX)}


def reopened(repo: Repository) -> Repository:
    return open_repository(open_backend(repo.backend.location), PASSWORD.encode())


def test_a_push_writes_blobs_index_and_a_record_and_reads_back(repo: Repository, tmp_path: Path) -> None:
    data = os.urandom(3 * MIB)
    assert wal.push(repo, "main", write_wal(tmp_path, seg_name(1), data)) is True
    objects = [fi.name for fi in WalStore(repo).list()]
    assert objects == [f"main.{seg_name(1)}.rec"]
    assert len(stored_blobs(repo)) >= 2 and len(index_files(repo)) == 1
    assert wal.push(repo, "main", write_wal(tmp_path, seg_name(1), data)) is False  # identical: exit 0
    with pytest.raises(WalConflict) as err:
        wal.push(repo, "main", write_wal(tmp_path, seg_name(1), data[:-1] + b"x"))
    assert err.value.exit_code == 40
    other = reopened(repo)
    try:
        wal.fetch(other, "main", seg_name(1), str(tmp_path / "out"))
    finally:
        other.close()
    assert (tmp_path / "out").read_bytes() == data


def test_the_same_segment_under_two_names_stores_its_blobs_once(repo: Repository, tmp_path: Path) -> None:
    data = os.urandom(3 * MIB)
    wal.push(repo, "main", write_wal(tmp_path, seg_name(1), data))
    once = stored_blobs(repo)
    wal.push(repo, "main", write_wal(tmp_path, seg_name(2), data))  # another call: the hint finds them
    assert sorted(stored_blobs(repo)) == sorted(once) and len(set(once)) == len(once)
    store = WalStore(repo)
    assert store.blob_ids(f"main.{seg_name(1)}.rec") == store.blob_ids(f"main.{seg_name(2)}.rec")
    # within one batch, with no hints at all
    from amber.services.walpush import push_files

    other = os.urandom(2 * MIB)
    paths = [write_wal(tmp_path, seg_name(n), other) for n in (3, 4)]
    before = len(stored_blobs(repo))
    fresh = open_repository(open_backend(repo.backend.location), PASSWORD.encode(), load_index=False)
    try:
        pushed = push_files(fresh, "main", paths, use_hints=False)
    finally:
        fresh.close()
    assert all(p.stored and p.error is None for p in pushed)
    added = len(stored_blobs(repo)) - before
    assert added == len(set(chunk_ids(repo, other)))  # once, not once per name
    for n in (3, 4):
        wal.fetch(repo, "main", seg_name(n), str(tmp_path / "got"))
        assert (tmp_path / "got").read_bytes() == other


def test_a_hint_is_checked_against_the_repository(repo: Repository, tmp_path: Path) -> None:
    data = os.urandom(2 * MIB)
    wal.push(repo, "main", write_wal(tmp_path, seg_name(1), data))
    (only_index,) = index_files(repo)
    repo.backend.remove(Handle(FileType.INDEX, only_index))  # as if a prune had replaced it
    hints = WalHints(repo.id)
    assert set(hints.entries.values()) == {only_index}
    before = len(stored_blobs(repo))
    wal.push(repo, "main", write_wal(tmp_path, seg_name(2), data))
    assert len(stored_blobs(repo)) == 2 * before  # the hint named a file that is gone: stored again
    fresh = os.urandom(2 * MIB)
    planted = WalHints(repo.id)  # hints naming a stored index file that does not list these blobs
    planted.remember({blob_id: next(iter(index_files(repo))) for blob_id in chunk_ids(repo, fresh)})
    planted.save()
    wal.push(repo, "main", write_wal(tmp_path, seg_name(3), fresh))
    assert set(chunk_ids(repo, fresh)) <= set(stored_blobs(repo))
    wal.fetch(reopened(repo), "main", seg_name(3), str(tmp_path / "got"))
    assert (tmp_path / "got").read_bytes() == fresh


def test_prune_keeps_the_blobs_of_kept_records_and_frees_the_others(repo: Repository, tmp_path: Path) -> None:
    old, kept = os.urandom(2 * MIB), os.urandom(2 * MIB)
    wal.push(repo, "main", write_wal(tmp_path, seg_name(1), old))
    old_blobs = set(stored_blobs(repo))
    wal.push(repo, "main", write_wal(tmp_path, seg_name(2), kept))
    kept_blobs = set(stored_blobs(repo)) - old_blobs
    fake_base(repo, 2, 2)
    assert check_service.check(repo).ok
    assert not any("not referenced" in w for w in check_service.check(repo).warnings)
    dry = prune(repo, PruneOptions(dry_run=True))  # counts the freed blobs, removes nothing
    assert dry.wal_removed == 1 and dry.plan.doomed, dry.plan
    assert old_blobs | kept_blobs <= set(stored_blobs(repo))
    result = prune(repo)
    assert result.wal_removed == 1
    after = reopened(repo)
    try:
        left = set(stored_blobs(after))
        assert kept_blobs <= left and not (old_blobs & left)
        wal.fetch(after, "main", seg_name(2), str(tmp_path / "got"))
        assert (tmp_path / "got").read_bytes() == kept
        assert check_service.check(after, read_data=True).ok
    finally:
        after.close()


def test_check_finds_a_damaged_wal_blob(repo: Repository, tmp_path: Path) -> None:
    wal.push(repo, "main", write_wal(tmp_path, seg_name(1), os.urandom(2 * MIB)))
    (pack,) = list(repo.backend.list(FileType.PACK))
    (path,) = Path(repo.backend.location).glob(f"data/**/{pack.name}")
    damaged = bytearray(path.read_bytes())
    damaged[1000] ^= 0x01  # inside the first blob
    path.write_bytes(bytes(damaged))
    assert check_service.check(repo).ok  # the record and its index entries are intact
    report = check_service.check(repo, read_data=True)
    assert not report.ok and any(f"main.{seg_name(1)}.rec" in e for e in report.errors), report.errors


def test_copy_stores_records_and_deduplicates_in_the_destination(repo: Repository, tmp_path: Path) -> None:
    data = os.urandom(2 * MIB)
    for n in (1, 2):
        wal.push(repo, "main", write_wal(tmp_path, seg_name(n), data))
    dst_path = str(tmp_path / "mirror")
    init_repository(open_backend(dst_path), b"other password").close()
    dst = open_repository(open_backend(dst_path), b"other password")
    try:
        assert copy_snapshots(repo, dst).wal_copied == 2
        assert sorted(fi.name for fi in WalStore(dst).list()) == [f"main.{seg_name(n)}.rec" for n in (1, 2)]
        assert sorted(stored_blobs(dst)) == sorted(set(chunk_ids(dst, data)))  # once there too, its chunking
        wal.fetch(dst, "main", seg_name(2), str(tmp_path / "got"))
        assert (tmp_path / "got").read_bytes() == data
        assert check_service.check(dst, read_data=True).ok
    finally:
        dst.close()


def test_format_2_sealed_wal_stays_readable_after_migrating(tmp_path: Path) -> None:
    path = str(tmp_path / "v2")
    init_repository(open_backend(path), PASSWORD.encode(), version=2).close()
    repo = open_repository(open_backend(path), PASSWORD.encode())
    try:
        old = os.urandom(100_000)
        assert wal.push(repo, "main", write_wal(tmp_path, seg_name(1), old))
        assert [fi.name for fi in WalStore(repo).list()] == [f"main.{seg_name(1)}"]  # sealed whole
        assert stored_blobs(repo) == []
        assert migrate(repo).version_after == 3 and repo.config.version == 3
        assert wal.push(repo, "main", write_wal(tmp_path, seg_name(1), old)) is False  # same: 0
        with pytest.raises(WalConflict):
            wal.push(repo, "main", write_wal(tmp_path, seg_name(1), b"other"))
        wal.push(repo, "main", write_wal(tmp_path, seg_name(2), os.urandom(100_000)))
        names = sorted(fi.name for fi in WalStore(repo).list())
        assert names == [f"main.{seg_name(1)}", f"main.{seg_name(2)}.rec"]
        wal.fetch(repo, "main", seg_name(1), str(tmp_path / "got"))
        assert (tmp_path / "got").read_bytes() == old
        assert check_service.check(repo, read_data=True).wal_read == 2
        dst_path = str(tmp_path / "mirror")
        init_repository(open_backend(dst_path), PASSWORD.encode()).close()
        dst = open_repository(open_backend(dst_path), PASSWORD.encode())
        try:
            assert copy_snapshots(repo, dst).wal_copied == 2
            assert all(is_record(fi.name) for fi in WalStore(dst).list())
        finally:
            dst.close()
        fake_base(repo, 2, 2)
        assert prune(repo).wal_removed == 1
        assert [fi.name for fi in WalStore(repo).list()] == [f"main.{seg_name(2)}.rec"]
    finally:
        repo.close()


def ready(tmp_path: Path, names: list[str]) -> list[str]:
    status = tmp_path / "pg_wal" / "archive_status"
    status.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        paths.append(write_wal(tmp_path, name, os.urandom(200_000)))
        (status / f"{name}.ready").touch()
    return paths


def test_async_pushes_every_ready_file_in_one_batch(repo: Repository, tmp_path: Path) -> None:
    names = [seg_name(n) for n in range(1, 6)] + ["00000002.history"]
    paths = ready(tmp_path, names)
    assert walspool.ready_paths(paths[2])[:2] == [paths[2], paths[5]]  # asked first, then history
    spool = str(tmp_path / "spool")
    assert walasync.push_ready(repo, "main", paths[0], spool) is True
    assert len(index_files(repo)) == 1  # one batch: one index file for all six
    archived = {n.file for n in wal.archived(repo)["main"].names}
    assert archived == set(names)
    assert all(walspool.already_pushed(spool, p) for p in paths)
    Path(paths[3]).write_bytes(b"changed since")  # a marker vouches only for the content pushed
    assert not walspool.already_pushed(spool, paths[3])
    with pytest.raises(WalConflict):
        walasync.push_ready(repo, "main", paths[3], spool)
    os.unlink(paths[1])  # PostgreSQL removed it: its marker goes with the next batch
    walasync.push_ready(repo, "main", paths[4], spool)
    assert not (Path(spool) / f"{names[1]}.ok").exists() and (Path(spool) / f"{names[4]}.ok").exists()


def test_async_never_marks_a_file_that_failed(repo: Repository, tmp_path: Path) -> None:
    paths = ready(tmp_path, [seg_name(1), seg_name(2)])
    (tmp_path / "elsewhere").mkdir()
    wal.push(repo, "main", write_wal(tmp_path / "elsewhere", seg_name(2), b"other content"))
    spool = str(tmp_path / "spool")
    assert walasync.push_ready(repo, "main", paths[0], spool) is True  # its own push succeeded
    assert walspool.already_pushed(spool, paths[0]) and not walspool.already_pushed(spool, paths[1])
    with pytest.raises(WalConflict):
        walasync.push_ready(repo, "main", paths[1], spool)


def test_a_push_during_prune_keeps_the_doomed_blobs_it_deduplicated_against(
    repo: Repository, tmp_path: Path
) -> None:
    """Prune dooms a pack; a push that started before prune removed the index file listing
    it finds the pack through its hint and references its blobs, then leaves before prune
    reads the lock holders. Phase 2 walks that new record and rescues the pack."""
    from amber.engine.pruner import PruneOptions, Pruner
    from tests.engine.test_prune_guards import OnFirstIndexWrite

    data = os.urandom(2 * MIB)
    wal.push(repo, "main", write_wal(tmp_path, seg_name(1), data))
    repo.backend.remove(Handle(FileType.WAL, f"main.{seg_name(1)}.rec"))  # its blobs: unused now
    location = repo.backend.location
    pushed: list[bool] = []

    def push_meanwhile() -> None:
        late = open_repository(open_backend(location), PASSWORD.encode(), load_index=False)
        try:
            before = len(stored_blobs(late))
            pushed.append(wal.push(late, "main", write_wal(tmp_path, seg_name(2), data)))
            assert len(stored_blobs(late)) == before  # deduplicated against the doomed pack
        finally:
            late.close()

    pruning = open_repository(OnFirstIndexWrite(open_backend(location), push_meanwhile), PASSWORD.encode())
    try:
        with pruning.lock(maintenance=True) as lock:
            result = Pruner(pruning, lock, PruneOptions(max_unused="0%")).run()
    finally:
        pruning.close()
    assert pushed == [True], "the push did not run during prune"
    assert result.deleted_packs == 0  # phase 2 rescued the pack the new record needs
    after = reopened(repo)
    try:
        assert check_service.check(after, read_data=True).ok
        prune(after)  # and a later prune keeps it: the record is walked
        wal.fetch(after, "main", seg_name(2), str(tmp_path / "got"))
        assert (tmp_path / "got").read_bytes() == data
        assert check_service.check(after, read_data=True).ok
    finally:
        after.close()
