"""The lease refresh loop, stepped by a fake clock: each step rewrites the lock file.

Nothing here sleeps for a refresh interval: the loop's wait is the clock's,
which returns when the test moves time past the interval.
"""

from __future__ import annotations

import threading
import time

import msgspec

from amber.repository import Repository
from amber.repository.lock import LEASE_S, REFRESH_S, Lock, LockInfo
from amber.storage.base import FileType, Handle


class SteppedClock:
    """Time that moves only when the test says; ``wait`` sleeps in this time."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.waits = 0  # calls to wait so far: the loop's n-th wait means n-1 refreshes done
        self._cond = threading.Condition()

    def __call__(self) -> float:
        return self.now

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        with self._cond:
            self.waits += 1
            self._cond.notify_all()
            deadline = self.now + seconds
            while self.now < deadline and not stop.is_set():
                self._cond.wait(0.01)  # release() sets ``stop`` without notifying us
            return stop.is_set()

    def advance(self, seconds: float) -> None:
        with self._cond:
            self.now += seconds
            self._cond.notify_all()

    def until_waits(self, n: int) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: self.waits >= n, timeout=10), (
                "the refresh loop did not come back"
            )


def _lock_files(repo: Repository) -> dict[str, LockInfo]:
    return {
        fi.name: msgspec.msgpack.decode(
            repo.key.decrypt(repo.backend.load(Handle(FileType.LOCK, fi.name))), type=LockInfo
        )
        for fi in repo.backend.list(FileType.LOCK)
    }


def test_each_refresh_rewrites_the_lease_and_removes_the_old_file(repo: Repository) -> None:
    clock = SteppedClock(time.time())
    lock = Lock(repo.backend, repo.key.encrypt, repo.key.decrypt, False, clock=clock, wait=clock.wait)
    lock.acquire()
    try:
        clock.until_waits(1)
        [(first, info)] = _lock_files(repo).items()
        start = info.time
        assert lock.is_fresh() and not lock.is_fresh(start + LEASE_S - REFRESH_S)
        for step in (1, 2, 3):
            clock.advance(REFRESH_S)
            clock.until_waits(step + 1)  # the loop is back waiting: the refresh is done
            [(name, info)] = _lock_files(repo).items()  # one file: the old one is gone
            assert name != first and info.time == start + step * REFRESH_S
            assert info.acquired == start  # the holder stays the same across refreshes
            assert lock.refreshed == info.time and lock.is_fresh(info.time + LEASE_S - REFRESH_S - 1)
            first = name
    finally:
        lock.release()
    assert _lock_files(repo) == {}
