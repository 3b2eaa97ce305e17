"""Lease locks: a lock left by a killed process expires by itself; unlock only tidies up."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from amber.errors import RepositoryLocked
from amber.repository import Repository, open_repository
from amber.repository.lock import LEASE_S, Lock, LockInfo, is_stale
from amber.services.unlock import unlock
from amber.storage import open_backend
from tests.conftest import PASSWORD, AmberCli

HOLDER = r"""
import sys, time
from amber.repository import open_repository
from amber.storage import open_backend
repo = open_repository(open_backend(sys.argv[1]), sys.argv[2].encode(), load_index=False)
with repo.lock(exclusive=True):
    print("locked", flush=True)
    time.sleep(300)
"""


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the pid no longer exists
    return proc.pid


def lock_files(repo_path: Path) -> list[str]:
    return sorted(p.name for p in (repo_path / "locks").iterdir())


@pytest.fixture
def holder(repo: Repository, repo_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Another process that holds an exclusive lock until it is killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(repo_path), PASSWORD],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line == b"locked\n", proc.stderr.read() if proc.stderr else line
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_lock_of_a_sigkilled_process_expires_without_unlock(
    repo: Repository, repo_path: Path, tmp_path: Path, holder: subprocess.Popen[bytes]
) -> None:
    with pytest.raises(RepositoryLocked, match=f"pid {holder.pid}"), repo.lock():
        pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert len(lock_files(repo_path)) == 1  # the file is still there: nobody released it

    with repo.lock(exclusive=True):  # dead local pid: stale at once, no unlock needed
        assert len(lock_files(repo_path)) == 2
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("data")
    cli = AmberCli(repo_path, tmp_path)
    cli.run("backup", str(src))
    res = cli.run("forget", "--keep-last", "1")
    assert "removed 0 snapshots" in res.stdout

    res = cli.run("unlock")  # tidies up the dead holder's file
    assert f"process {holder.pid} no longer exists" in res.stdout
    assert lock_files(repo_path) == []


def test_expired_lease_is_ignored_even_if_its_holder_looks_alive(repo: Repository, repo_path: Path) -> None:
    # Written through the lock module with a clock 5 s past the lease: our own, live pid,
    # so only the lease rule can make it stale (as for a host that lost power).
    old = Lock(repo.backend, *repo.lock_codec(), exclusive=True,
               clock=lambda: time.time() - LEASE_S - 5)  # fmt: skip
    old.acquire()
    try:
        [stale_name] = lock_files(repo_path)
        with repo.lock(exclusive=True):
            pass
        result = unlock(repo)
        assert [e.name for e in result.removed] == [stale_name]
        assert result.removed[0].reason.startswith("lease expired")
        assert lock_files(repo_path) == []
    finally:
        old.release()


def test_lease_not_yet_expired_still_blocks(repo: Repository, repo_path: Path) -> None:
    recent = Lock(repo.backend, *repo.lock_codec(), exclusive=True,
                  clock=lambda: time.time() - LEASE_S + 60)  # fmt: skip
    recent.acquire()
    try:
        with pytest.raises(RepositoryLocked, match=r"expires 5\d s after"), repo.lock():
            pass
        result = unlock(repo)  # a live lock is never removed without --remove-all
        assert result.removed == [] and [e.reason for e in result.kept] == ["live"]
        assert len(lock_files(repo_path)) == 1
    finally:
        recent.release()


def test_unlock_remove_all_removes_live_and_unreadable_locks(repo: Repository, repo_path: Path) -> None:
    other = open_repository(open_backend(str(repo_path)), PASSWORD.encode(), load_index=False)
    (repo_path / "locks" / ("ff" * 32)).write_bytes(b"not a lock")
    try:
        with other.lock(exclusive=False):
            result = unlock(repo)
            assert result.removed == [] and sorted(e.reason for e in result.kept) == ["live", "unreadable"]
            result = unlock(repo, remove_all=True)
            assert sorted(e.reason for e in result.removed) == ["live", "unreadable"]
            assert lock_files(repo_path) == []
    finally:
        other.close()


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("here", "pid", "age", "stale"),
    [
        (False, "other", 0.0, False),
        (False, "other", LEASE_S, False),  # exactly the lease: still alive
        (False, "other", LEASE_S + 0.5, True),
        (False, "dead", 10.0, False),  # pids of other hosts are never checked
        (True, "self", 10.0, False),
        (True, "self", LEASE_S + 1, True),
        (True, "dead", 10.0, True),
    ],
)
def test_is_stale(here: bool, pid: str, age: float, stale: bool) -> None:
    number = {"other": 1, "self": os.getpid(), "dead": dead_pid() if pid == "dead" else 0}[pid]
    info = LockInfo(hostname=socket.gethostname() if here else "elsewhere.invalid", pid=number,
                    time=NOW - age, exclusive=False)  # fmt: skip
    assert is_stale(info, now=NOW) is stale
