"""The WAL archive on real repositories: push/fetch contract, retention by base backup, copy, check."""

from __future__ import annotations

import datetime
import io
import json
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO

import pytest

from amber.errors import UsageError, WalConflict, WalMissing
from amber.repository import Repository, init_repository, open_repository
from amber.services import check as check_service
from amber.services import wal, walcheck
from amber.services.backup import BackupRequest
from amber.services.copy import copy_snapshots
from amber.services.prune import prune
from amber.services.streams import NamedStream, backup_streams
from amber.sources.databases import pgbase
from amber.storage import open_backend
from tests.conftest import PASSWORD

SEG = 16 << 20


def lsn_of(segment_number: int, offset: int = 0x28) -> str:
    value = segment_number * SEG + offset
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def seg_name(number: int, timeline: int = 1) -> str:
    return f"{timeline:08X}{number // 256:08X}{number % 256:08X}"


def write_wal(tmp: Path, name: str, content: bytes) -> str:
    path = tmp / "pg_wal" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(content)
    return str(path)


def stream(content: bytes) -> Callable[[], AbstractContextManager[IO[bytes]]]:
    @contextmanager
    def opener() -> Iterator[IO[bytes]]:
        yield io.BytesIO(content)

    return opener


def fake_base(repo: Repository, start_seg: int, stop_seg: int, cluster: str = "main") -> str:
    """A base backup snapshot as `pg basebackup` writes it (a stand-in tar and its record)."""
    info = wal.BaseInfo(cluster=cluster, timeline=1, start_lsn=lsn_of(start_seg),
                        stop_lsn=lsn_of(stop_seg, 0x100), stop_time="2026-01-01T00:00:00+00:00")  # fmt: skip
    streams = [NamedStream(wal.tar_path(cluster), stream(b"tar of the data directory")),
               NamedStream(wal.info_path(cluster), stream(wal.encode_info(info)))]  # fmt: skip
    req = BackupRequest(tags=[wal.BASE_TAG, f"pg-cluster={cluster}"])
    return backup_streams(repo, req, streams).snapshot_id


def archived_files(repo: Repository, cluster: str = "main") -> set[str]:
    entry = wal.archived(repo).get(cluster)
    return {n.file for n in entry.names} if entry else set()


def test_push_is_idempotent_and_refuses_other_content(repo: Repository, tmp_path: Path) -> None:
    name = seg_name(3)
    assert wal.push(repo, "main", write_wal(tmp_path, name, b"A" * 1000)) is True
    assert wal.push(repo, "main", write_wal(tmp_path, name, b"A" * 1000)) is False  # PostgreSQL retried: fine
    with pytest.raises(WalConflict):
        wal.push(repo, "main", write_wal(tmp_path, name, b"B" * 1000))
    out = tmp_path / "restored"
    assert wal.fetch(repo, "main", name, str(out)) == 1000
    assert out.read_bytes() == b"A" * 1000


def test_fetch_of_a_missing_file_is_wal_missing_and_writes_nothing(repo: Repository, tmp_path: Path) -> None:
    with pytest.raises(WalMissing) as err:
        wal.fetch(repo, "main", seg_name(9), str(tmp_path / "x"))
    assert err.value.exit_code == 41
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("name", ["pg_hba.conf", "00000001000000000000000G", "../000000010000000000000001",
                                  "000000010000000000000001.backup"])  # fmt: skip
def test_only_postgresql_wal_names_are_archived(repo: Repository, tmp_path: Path, name: str) -> None:
    with pytest.raises(UsageError):
        wal.push(repo, "main", str(tmp_path / name))


def test_clusters_are_kept_apart(repo: Repository, tmp_path: Path) -> None:
    name = seg_name(1)
    wal.push(repo, "alpha", write_wal(tmp_path, name, b"alpha"))
    wal.push(repo, "beta", write_wal(tmp_path, name, b"beta"))  # same name, other server: no conflict
    wal.fetch(repo, "beta", name, str(tmp_path / "b"))
    assert (tmp_path / "b").read_bytes() == b"beta"


def test_a_renamed_wal_object_fails_authentication(repo: Repository, tmp_path: Path) -> None:
    wal.push(repo, "main", write_wal(tmp_path, seg_name(1), b"one"))
    wal_dir = Path(repo.backend.location) / "wal"
    os.replace(wal_dir / f"main.{seg_name(1)}.rec", wal_dir / f"main.{seg_name(2)}.rec")
    report = check_service.check(repo, read_data=True)
    assert any(seg_name(2) in e for e in report.errors), report.errors


def test_prune_keeps_the_wal_kept_base_backups_need(repo: Repository, tmp_path: Path) -> None:
    for n in range(1, 9):
        wal.push(repo, "main", write_wal(tmp_path, seg_name(n), f"segment {n}".encode()))
    history = "00000002.history"
    wal.push(repo, "main", write_wal(tmp_path, history, b"1\t0/5000000\tbefore 2000-01-01"))
    backup_file = f"{seg_name(2)}.00000028.backup"
    wal.push(repo, "main", write_wal(tmp_path, backup_file, b"START WAL LOCATION ..."))
    older = fake_base(repo, 2, 3)
    fake_base(repo, 5, 6)

    result = prune(repo)
    assert result.wal_removed == 1  # only segment 1 lies before the oldest base backup
    assert archived_files(repo) == {seg_name(n) for n in range(2, 9)} | {history, backup_file}

    repo.remove_snapshot(older)  # forget the older base backup: its WAL may go, history stays
    result = prune(repo)
    assert result.wal_removed == 4
    assert archived_files(repo) == {seg_name(n) for n in range(5, 9)} | {history}


def test_a_cluster_without_a_base_backup_keeps_all_its_wal(repo: Repository, tmp_path: Path) -> None:
    for n in range(1, 4):
        wal.push(repo, "lonely", write_wal(tmp_path, seg_name(n), b"x"))
    fake_base(repo, 3, 3, cluster="other")
    assert prune(repo).wal_removed == 0
    assert len(archived_files(repo, "lonely")) == 3


def test_prune_dry_run_removes_no_wal(repo: Repository, tmp_path: Path) -> None:
    from amber.services.prune import PruneOptions

    for n in range(1, 4):
        wal.push(repo, "main", write_wal(tmp_path, seg_name(n), b"x"))
    fake_base(repo, 3, 3)
    assert prune(repo, PruneOptions(dry_run=True)).wal_removed == 2
    assert len(archived_files(repo)) == 3


def test_copy_replicates_wal_under_the_destination_key(repo: Repository, tmp_path: Path) -> None:
    contents = {seg_name(n): os.urandom(5000) + bytes(20000) for n in range(1, 4)}
    for name, content in contents.items():
        wal.push(repo, "main", write_wal(tmp_path, name, content))
    fake_base(repo, 1, 2)
    dst_path = str(tmp_path / "mirror")
    init_repository(open_backend(dst_path), b"other password").close()
    dst = open_repository(open_backend(dst_path), b"other password")
    try:
        result = copy_snapshots(repo, dst)
        assert result.wal_copied == 3 and not result.failed
        for name, content in contents.items():
            wal.fetch(dst, "main", name, str(tmp_path / "got"))
            assert (tmp_path / "got").read_bytes() == content
        assert [b.info.start_lsn for b in wal.base_backups(dst)] == [lsn_of(1)]
        assert copy_snapshots(repo, dst).wal_copied == 0  # nothing new the second time
    finally:
        dst.close()


def test_check_reads_wal_and_finds_damage_and_missing_segments(repo: Repository, tmp_path: Path) -> None:
    for n in (1, 2, 4):
        wal.push(repo, "main", write_wal(tmp_path, seg_name(n), os.urandom(3000)))
    fake_base(repo, 1, 2)
    report = check_service.check(repo, read_data=True)
    assert report.ok and report.wal_read == 3
    assert any("missing" in w and seg_name(3)[8:] in w for w in report.warnings), report.warnings

    target = Path(repo.backend.location) / "wal" / f"main.{seg_name(2)}.rec"
    damaged = bytearray(target.read_bytes())
    damaged[60] ^= 0x01
    target.write_bytes(bytes(damaged))
    for read_data in (False, True):  # records are small: check always authenticates them
        report = check_service.check(repo, read_data=read_data)
        assert not report.ok and any(f"main.{seg_name(2)}" in e for e in report.errors), report.errors

    target.unlink()  # the base backup now lacks WAL it cannot do without
    report = check_service.check(repo)
    assert any("cannot be restored" in e for e in report.errors), report.errors


def test_a_format_1_repository_refuses_wal(tmp_path: Path) -> None:
    path = str(tmp_path / "v1")
    init_repository(open_backend(path), PASSWORD.encode(), version=1).close()
    old = open_repository(open_backend(path), PASSWORD.encode())
    try:
        with pytest.raises(UsageError, match="migrate"):
            wal.push(old, "main", write_wal(tmp_path, seg_name(1), b"x"))
        assert check_service.check(old).ok  # and it still checks without a WAL namespace
    finally:
        old.close()


def test_an_unreadable_base_backup_record_stops_wal_expiry(repo: Repository, tmp_path: Path) -> None:
    for n in range(1, 5):
        wal.push(repo, "main", write_wal(tmp_path, seg_name(n), b"x"))
    fake_base(repo, 4, 4)
    req = BackupRequest(tags=[wal.BASE_TAG, "pg-cluster=main"])  # a base backup whose record is lost
    backup_streams(repo, req, [NamedStream(wal.tar_path("main"), stream(b"tar"))])
    result = wal.expire(repo)
    assert result.removed == 0 and result.kept == 4 and "no WAL expired" in result.refused[0]
    assert len(archived_files(repo)) == 4


def hostile_base(repo: Repository, record: bytes, cluster: str = "main") -> str:
    """A base backup snapshot whose record a key holder wrote: any bytes."""
    streams = [NamedStream(wal.tar_path(cluster), stream(b"tar")),
               NamedStream(wal.info_path(cluster), stream(record))]  # fmt: skip
    req = BackupRequest(tags=[wal.BASE_TAG, f"pg-cluster={cluster}"])
    return backup_streams(repo, req, streams).snapshot_id


GOOD_INFO = {"cluster": "main", "timeline": 1, "start_lsn": "0/1000028", "stop_lsn": "0/1000100",
             "stop_time": "2026-01-01T00:00:00+00:00"}  # fmt: skip


@pytest.mark.parametrize("change", [
    {"segment_size": 0},  # ZeroDivisionError / UsageError when its segments are named
    {"segment_size": 3 << 20},  # not a power of two
    {"start_lsn": "not an lsn"},
    {"stop_lsn": "-1/0"},
    {"start_lsn": "0/2000000", "stop_lsn": "0/1000000"},  # ends before it starts
    {"start_lsn": "0/0", "stop_lsn": "FFFFFFFF/FF000000"},  # 2^40 segments: check would never end
    {"timeline": 0},
    {"timeline": 1 << 40},
    {"stop_time": "yesterday"},  # pg restore --target-time: ValueError
    {"stop_time": "2026-01-01T00:00:00"},  # no offset: comparing it with the target is a TypeError
    {"cluster": "other"},  # the snapshot's tag says main
    {"cluster": "../../etc"},
])  # fmt: skip
def test_a_malformed_base_backup_record_is_left_out_as_unreadable(
    repo: Repository, tmp_path: Path, change: dict[str, object]
) -> None:
    wal.push(repo, "main", write_wal(tmp_path, seg_name(1), b"x"))
    sid = hostile_base(repo, json.dumps({**GOOD_INFO, **change}).encode())
    unreadable: list[str] = []
    assert wal.base_backups(repo, unreadable=unreadable) == []
    assert len(unreadable) == 1 and "malformed" in unreadable[0], unreadable
    report = walcheck.check_wal(repo)  # check names it, and neither prune nor restore uses it
    assert report.errors == [f"base backup {unreadable[0]}: it cannot be restored"]
    assert report.errors[0].startswith(f"base backup {sid[:8]}: malformed record")
    assert wal.expire(repo).removed == 0


def test_a_well_formed_base_backup_record_is_kept(repo: Repository) -> None:
    sid = hostile_base(repo, json.dumps(GOOD_INFO).encode())
    assert [b.snapshot_id for b in wal.base_backups(repo)] == [sid]


def test_an_oversized_base_backup_record_is_not_read_into_memory(repo: Repository) -> None:
    hostile_base(repo, json.dumps(GOOD_INFO).encode() + b" " * wal.MAX_INFO_BYTES)
    unreadable: list[str] = []
    assert wal.base_backups(repo, unreadable=unreadable) == []
    assert "larger than" in unreadable[0]


def test_pg_restore_to_a_time_is_not_derailed_by_a_record_without_an_offset(
    repo: Repository, tmp_path: Path
) -> None:
    hostile_base(repo, json.dumps({**GOOD_INFO, "stop_time": "2026-01-01T00:00:00"}).encode())
    target = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)
    with pytest.raises(UsageError, match="no base backup before the target"):  # was a TypeError
        pgbase.restore_point_in_time(repo, "main", str(tmp_path / "data"), "true", target)
    assert not (tmp_path / "data").exists()
