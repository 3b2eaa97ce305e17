"""Lease locks: shared for writers and readers, exclusive for maintenance.

A lock is an encrypted file under ``locks/``. Its holder rewrites it every
``REFRESH_S`` seconds. A lock is stale, and ignored, when its timestamp is
older than ``LEASE_S`` (the holder stopped refreshing: crash, power loss), or
when it was taken on this host by a process that no longer exists. So no manual
``unlock`` is ever needed. Clock skew between hosts must stay below
``LEASE_S - REFRESH_S`` (4 minutes).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable

import msgspec

from amber.errors import AmberError, IntegrityError, ObjectNotFound, RepositoryLocked
from amber.storage.base import Backend, FileType, Handle

REFRESH_S = 60.0
LEASE_S = 300.0


class LockInfo(msgspec.Struct):
    hostname: str
    pid: int
    time: float
    exclusive: bool
    nonce: int = 0
    acquired: float = 0.0  # first acquisition; unchanged by refreshes (for prune's marks)
    maintenance: bool = False  # prune/repair: excludes other maintenance, not shared locks

    @property
    def holder(self) -> tuple[str, int, float]:
        """Identifies one holder across refreshes (the file name changes, this does not)."""
        return (self.hostname, self.pid, self.acquired)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(info: LockInfo, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    if now - info.time > LEASE_S:
        return True
    return info.hostname == socket.gethostname() and not _pid_alive(info.pid)


class Lock:
    """A held lock; refreshes itself in a daemon thread until released."""

    def __init__(
        self,
        backend: Backend,
        encrypt: Callable[[bytes], bytes],
        decrypt: Callable[[bytes], bytes],
        exclusive: bool,
        maintenance: bool = False,
        clock: Callable[[], float] = time.time,  # injectable: tests date a lock without waiting
        wait: Callable[[threading.Event, float], bool] = threading.Event.wait,  # and step its refreshes
    ) -> None:
        self._clock = clock
        self._wait = wait
        self._backend = backend
        self._encrypt = encrypt
        self._decrypt = decrypt
        self.exclusive = exclusive
        self.maintenance = maintenance
        self._name: str | None = None
        self._acquired = clock()
        self.refreshed = 0.0  # our clock when our lock file was last written
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _write(self) -> str:
        info = LockInfo(
            hostname=socket.gethostname(),
            pid=os.getpid(),
            time=self._clock(),
            exclusive=self.exclusive,
            nonce=int.from_bytes(os.urandom(6), "little"),
            acquired=self._acquired,
            maintenance=self.maintenance,
        )
        data = self._encrypt(msgspec.msgpack.encode(info))
        name = hashlib.sha256(data).hexdigest()
        self._backend.save(Handle(FileType.LOCK, name), data)
        self.refreshed = info.time
        return name

    def is_fresh(self, now: float | None = None) -> bool:
        """Our lease is safely alive: written within LEASE_S - REFRESH_S (prune checks before deleting)."""
        now = self._clock() if now is None else now
        return self._name is not None and now - self.refreshed < LEASE_S - REFRESH_S

    def read_all(self) -> dict[str, LockInfo]:
        locks: dict[str, LockInfo] = {}
        for fi in self._backend.list(FileType.LOCK):
            try:
                raw = self._backend.load(Handle(FileType.LOCK, fi.name))
                locks[fi.name] = msgspec.msgpack.decode(self._decrypt(raw), type=LockInfo)
            except (ObjectNotFound, IntegrityError, msgspec.DecodeError):
                continue  # vanished or unreadable (another key); not a live lock of ours
        return locks

    def _conflicts(self) -> list[LockInfo]:
        found = []
        for name, info in self.read_all().items():
            if name == self._name or is_stale(info):
                continue
            if self.exclusive or info.exclusive or (self.maintenance and info.maintenance):
                found.append(info)
        return found

    def acquire(self) -> None:
        conflict = self._conflicts()
        if not conflict:
            self._name = self._write()
            conflict = self._conflicts()  # someone may have raced us
            if conflict:
                self._remove_own()
        if conflict:
            c = conflict[0]
            kind = "exclusively " if c.exclusive else "for maintenance " if c.maintenance else ""
            raise RepositoryLocked(
                f"repository is {kind}locked by pid {c.pid} on {c.hostname} "
                f"(lock expires {int(LEASE_S - (time.time() - c.time))} s after its holder stops)"
            )
        self._thread = threading.Thread(target=self._refresh_loop, daemon=True, name="lock-refresh")
        self._thread.start()

    def _refresh_loop(self) -> None:
        while not self._wait(self._stop, REFRESH_S):
            old = self._name
            with contextlib.suppress(AmberError):
                self._name = self._write()
                if old:
                    self._backend.remove(Handle(FileType.LOCK, old))

    def _remove_own(self) -> None:
        if self._name:
            with contextlib.suppress(AmberError):
                self._backend.remove(Handle(FileType.LOCK, self._name))
            self._name = None

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._remove_own()
