"""The operation context: each operation's own options, cancel signal, read-only openings, audit record."""

from __future__ import annotations

from pathlib import Path

import pytest

from amber.errors import Interrupted, PermissionDenied
from amber.repository import Repository, Snapshot
from amber.services import session
from amber.services.context import OperationContext, OperationRecord
from amber.storage.ratelimit import RateLimitedBackend
from amber.storage.url import BackendOptions, find_layer
from tests.conftest import PASSWORD

PASSWORDS = session.PasswordSource(password_command=f"echo '{PASSWORD}'")


def test_two_operations_in_one_process_keep_their_own_options(repo: Repository, repo_path: Path) -> None:
    slow = OperationContext(BackendOptions(limit_upload_kib=64))
    fast = OperationContext()
    with (
        session.opened(str(repo_path), PASSWORDS, lock=False, ctx=slow) as a,
        session.opened(str(repo_path), PASSWORDS, lock=False, ctx=fast) as b,
    ):
        limited = find_layer(a.backend, RateLimitedBackend)
        assert limited is not None and limited.upload is not None and limited.upload.rate == 64 * 1024
        assert find_layer(b.backend, RateLimitedBackend) is None
        assert a.cancel is slow.cancel and b.cancel is fast.cancel
    assert slow.record.repository == str(repo_path)


def test_a_read_only_opening_refuses_every_write(repo: Repository, repo_path: Path) -> None:
    with session.opened(str(repo_path), PASSWORDS, lock=False, read_only=True) as ro:
        assert ro.snapshot_names() == []
        snap = Snapshot(time="2026-01-01T00:00:00Z", tree=b"\0" * 32, paths=["/"], hostname="h")
        with pytest.raises(PermissionDenied, match="read-only"):
            ro.save_snapshot(snap)
    assert repo.snapshot_names() == []
    with pytest.raises(ValueError), session.opened(str(repo_path), PASSWORDS, read_only=True):
        pass  # a lock is a write: read-only openings are for lock-free readers


def test_the_engine_stops_at_a_safe_point(repo: Repository, repo_path: Path, tmp_path: Path) -> None:
    from amber.services import backup

    src = tmp_path / "src"
    src.mkdir()
    for i in range(50):
        (src / f"f{i}").write_bytes(bytes([i]) * 1000)
    ctx = OperationContext()
    ctx.cancel.cancel(Interrupted())
    with session.opened(str(repo_path), PASSWORDS, ctx=ctx) as opened:
        with pytest.raises(Interrupted):
            backup.backup_paths(opened, backup.BackupRequest(paths=[str(src)]))
        assert opened.held_locks  # still held here; released on the way out
    assert repo.snapshot_names() == [] and repo.lock_names() == []


class Seen:
    def __init__(self) -> None:
        self.records: list[OperationRecord] = []

    def operation_finished(self, record: OperationRecord) -> None:
        self.records.append(record)


def test_each_sub_operation_is_reported_once_with_its_outcome() -> None:
    seen = Seen()
    parent = OperationContext(observers=[seen])
    job = parent.child("job", ["home"], repository="main")
    job.finish_with(Interrupted("terminated"))
    job.finish_with(None)  # once only
    parent.cancel.cancel(Interrupted())
    assert parent.child("job", ["later"]).cancel.cancelled  # a stopped caller starts no job
    parent.finish(0)
    assert [(r.command, r.args, r.exit_code, r.error) for r in seen.records] == [
        ("job", ["home"], 130, "terminated"), ("", [], 0, "")]  # fmt: skip


class CancelAfter:
    """Progress that cancels the operation once ``limit`` bytes were read (a signal, mid-backup)."""

    def __init__(self, ctx: OperationContext, limit: int) -> None:
        self.ctx, self.limit, self.seen = ctx, limit, 0

    def file_done(self, path: bytes, size: int, status: str) -> None:
        pass

    def bytes_done(self, n: int) -> None:
        self.seen += n
        if self.seen > self.limit:
            self.ctx.cancel.cancel(Interrupted())

    def error(self, path: bytes, message: str) -> None:
        pass


@pytest.mark.slow
def test_an_interrupted_backup_keeps_the_packs_it_uploaded(
    repo: Repository, repo_path: Path, tmp_path: Path
) -> None:
    import os

    from amber.services import backup

    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        (src / f"big{i}").write_bytes(os.urandom(8 << 20))
    ctx = OperationContext()
    req = backup.BackupRequest(paths=[str(src)], workers=1)
    with session.opened(str(repo_path), PASSWORDS, ctx=ctx) as opened, pytest.raises(Interrupted):
        backup.backup_paths(opened, req, CancelAfter(ctx, 20 << 20))
    assert list((repo_path / "index").iterdir()), "the uploaded pack was not indexed"
    with session.opened(str(repo_path), PASSWORDS) as again:
        outcome = backup.backup_paths(again, req)
    assert outcome.snapshot.summary.data_added < 32 << 20  # the first pack was not sent again
    assert outcome.snapshot.summary.total_bytes == 32 << 20
