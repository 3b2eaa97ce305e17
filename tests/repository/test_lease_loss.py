"""A lease that cannot be refreshed in time cancels its holder and refuses its commit (design §13).

Short lease timings are patched in (the module reads REFRESH_S and LEASE_S at call
time), so the refresh loop runs for real in a fraction of a second.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from amber.cancel import CancelToken
from amber.errors import LeaseLost, StorageError
from amber.repository import Repository, Snapshot
from amber.repository import lock as lock_module
from amber.storage.base import Backend, FileType, Handle
from amber.storage.forwarding import ForwardingBackend


@pytest.fixture
def short_lease(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(lock_module, "REFRESH_S", 0.05)
    monkeypatch.setattr(lock_module, "LEASE_S", 0.4)  # fresh while written within 0.35 s
    yield


class LockWritesFail(ForwardingBackend):
    """Lock files cannot be written while ``failing`` (a network outage on the lock path)."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.failing = False
        self.lock_saves = 0

    def save(self, handle: Handle, data: bytes | bytearray | memoryview) -> None:
        if handle.type is FileType.LOCK:
            if self.failing:
                raise StorageError("locks: connection refused")
            self.lock_saves += 1
        self.inner.save(handle, data)


def wait_until(probe: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_healthy_lease_is_rewritten_and_never_lost(repo: Repository, short_lease: None) -> None:
    backend = LockWritesFail(repo.backend)
    lost: list[LeaseLost] = []
    lk = lock_module.Lock(backend, repo.key.encrypt, repo.key.decrypt, False, on_lost=lost.append)
    lk.acquire()
    try:
        wait_until(lambda: backend.lock_saves >= 6)  # the refresh loop rewrites the lease
        assert lk.is_fresh() and not lost
        lk.ensure_held()
        saves = backend.lock_saves
        one_file = lambda: len(list(repo.backend.list(FileType.LOCK))) == 1  # noqa: E731
        wait_until(lambda: backend.lock_saves > saves + 2 and one_file())
        # the old file is removed after each rewrite: never more than a moment with two
    finally:
        lk.release()
    assert list(repo.backend.list(FileType.LOCK)) == []


def test_failing_refreshes_cancel_the_holder_before_the_lease_expires(
    repo: Repository, short_lease: None
) -> None:
    backend = LockWritesFail(repo.backend)
    cancel = CancelToken()
    lk = lock_module.Lock(backend, repo.key.encrypt, repo.key.decrypt, False, on_lost=cancel.cancel)
    lk.acquire()
    try:
        backend.failing = True
        started = time.monotonic()
        assert cancel.wait(5)
        # cancelled once the lease was no longer fresh, before others could call it stale
        assert time.monotonic() - started < lock_module.LEASE_S + 0.2
        with pytest.raises(LeaseLost, match="connection refused"):
            cancel.check()
        with pytest.raises(LeaseLost):
            lk.ensure_held()
    finally:
        lk.release()


def test_a_suspended_holder_may_not_commit_its_snapshot(repo: Repository, short_lease: None) -> None:
    """SIGSTOP-like: the clock jumps past the lease before the refresh thread runs again."""
    now = [time.time()]
    with repo.lock() as lk:
        lk._clock = lambda: now[0]
        snap = Snapshot(time="2026-01-01T00:00:00Z", tree=b"\0" * 32, paths=["/x"], hostname="h")
        repo.save_snapshot(snap)  # fresh: allowed
        now[0] += lock_module.LEASE_S + 1  # "resumed" much later
        with pytest.raises(LeaseLost, match="suspended"):
            repo.save_snapshot(snap)
        assert isinstance(repo.cancel.reason, LeaseLost)  # the whole operation stops too
    assert len(repo.snapshot_names()) == 1
