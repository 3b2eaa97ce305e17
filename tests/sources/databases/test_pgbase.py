"""The pure parts of base backups and point-in-time restore (no server needed)."""

from __future__ import annotations

import datetime
import io
import stat
import tarfile
from pathlib import Path

import pytest

from amber.errors import DatabaseError, DatabaseNotEmpty, UsageError
from amber.repository import Snapshot
from amber.services.wal import BaseBackup, BaseInfo
from amber.sources.databases import pgbase

UTC = datetime.UTC


def base(stop: str, stop_lsn: str) -> BaseBackup:
    info = BaseInfo(cluster="main", timeline=1, start_lsn="0/2000028", stop_lsn=stop_lsn, stop_time=stop)
    return BaseBackup(stop, Snapshot(time=stop, tree=b"\0" * 32, paths=["/databases"], hostname="db"), info)


BASES = [base("2026-01-01T10:00:00+00:00", "0/3000000"), base("2026-01-02T10:00:00+00:00", "0/9000000")]


@pytest.mark.parametrize(
    ("target", "lsn", "chosen"),
    [
        (datetime.datetime(2026, 1, 1, 12, tzinfo=UTC), None, 0),
        (datetime.datetime(2026, 1, 3, tzinfo=UTC), None, 1),
        (datetime.datetime(2026, 1, 2, 10, tzinfo=UTC), None, 1),  # ended exactly then: usable
        (
            datetime.datetime(2026, 1, 2, 11, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
            None,
            0,
        ),
        (None, 0x5000000, 0),
        (None, None, 1),
    ],
)
def test_the_newest_base_backup_that_ended_before_the_target(
    target: datetime.datetime | None, lsn: int | None, chosen: int
) -> None:
    assert pgbase.choose_base(BASES, target, lsn) is BASES[chosen]


def test_no_base_backup_before_the_target_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="before the target"):
        pgbase.choose_base(BASES, datetime.datetime(2025, 12, 31, tzinfo=UTC))
    with pytest.raises(UsageError, match="in the repository"):
        pgbase.choose_base([])


def test_recovery_settings_quote_for_postgresql() -> None:
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    lines = pgbase.recovery_settings("amber --password-file '/it''s' pg wal-get %f \"%p\"", when, None)
    assert lines == [
        "restore_command = 'amber --password-file ''/it''''s'' pg wal-get %f \"%p\"'",
        "recovery_target_timeline = 'latest'",
        "recovery_target_time = '2026-01-02 03:04:05+00:00'",
        "recovery_target_action = 'promote'",
    ]
    assert pgbase.recovery_settings("c", None, None) == [
        "restore_command = 'c'",
        "recovery_target_timeline = 'latest'",
    ]


def tar_with(first: str, content: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        member = tarfile.TarInfo(first)
        member.size = len(content)
        tar.addfile(member, io.BytesIO(content))
        tar.addfile(tarfile.TarInfo("PG_VERSION"), io.BytesIO(b""))
    return out.getvalue()


LABEL = b"START WAL LOCATION: 0/3000028 (file 000000010000000000000003)\nCHECKPOINT LOCATION: 0/3000060\n" \
        b"BACKUP METHOD: streamed\nLABEL: amber\nSTART TIMELINE: 2\n"  # fmt: skip


def test_the_backup_label_opens_the_tar() -> None:
    assert pgbase._backup_label(tar_with("backup_label", LABEL)) == (2, "0/3000028")
    with pytest.raises(DatabaseError, match="backup_label"):
        pgbase._backup_label(tar_with("PG_VERSION", LABEL))
    with pytest.raises(DatabaseError):
        pgbase._backup_label(b"not a tar" * 100)


def test_the_target_directory_must_be_empty_and_becomes_private(tmp_path: Path) -> None:
    target = tmp_path / "new" / "data"
    pgbase.prepare_target(str(target))
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    (target / "PG_VERSION").write_text("15\n")
    with pytest.raises(DatabaseNotEmpty):
        pgbase.prepare_target(str(target))


def test_recovery_is_appended_and_signalled(tmp_path: Path) -> None:
    (tmp_path / "PG_VERSION").write_text("15\n")
    (tmp_path / "postgresql.auto.conf").write_text("work_mem = '8MB'\n")
    pgbase.write_recovery(str(tmp_path), ["restore_command = 'x'"])
    assert (tmp_path / "postgresql.auto.conf").read_text().startswith("work_mem = '8MB'\n")
    assert (tmp_path / "postgresql.auto.conf").read_text().endswith("restore_command = 'x'\n")
    assert (tmp_path / "recovery.signal").read_bytes() == b""
