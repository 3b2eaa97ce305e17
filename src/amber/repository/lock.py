"""Lease locks: shared for writers and readers, exclusive for maintenance.

A lock is an encrypted file under ``locks/``. Its holder rewrites it every
``REFRESH_S`` seconds. A lock is stale, and ignored, when its timestamp is
older than ``LEASE_S`` (the holder stopped refreshing: crash, power loss), or
when it was taken on this host by a process that no longer exists. So no manual
``unlock`` is ever needed. Clock skew between hosts must stay below
``LEASE_S - REFRESH_S`` (4 minutes).

A holder whose lease is no longer fresh (not rewritten within ``LEASE_S -
REFRESH_S``: writes kept failing, or the process was suspended) has lost it:
another process may already treat it as stale, so the holder's operation is
cancelled through ``on_lost`` and ``ensure_held`` refuses to commit (design §13).
``AMBER_LEASE=REFRESH,LEASE`` (seconds) shortens both for tests.
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

from amber.errors import AmberError, IntegrityError, LeaseLost, ObjectNotFound, RepositoryLocked
from amber.repository.limits import OBJECT_LIMITS
from amber.storage.base import Backend, FileType, Handle
from amber.storage.layout import too_large


def _timings(spec: str) -> tuple[float, float]:
    """``"REFRESH,LEASE"`` seconds (a test hook); the defaults when empty or malformed."""
    try:
        refresh, lease = (float(x) for x in spec.split(","))
    except ValueError:
        return 60.0, 300.0
    if not 0 < refresh < lease / 2:
        return 60.0, 300.0
    return refresh, lease


REFRESH_S, LEASE_S = _timings(os.environ.get("AMBER_LEASE", ""))


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
        on_lost: Callable[[AmberError], None] | None = None,  # cancels the operation holding it
    ) -> None:
        self._clock = clock
        self._wait = wait
        self._on_lost = on_lost
        self.lost: LeaseLost | None = None
        self.refresh_error = ""  # the last refresh failure, for the message when the lease is lost
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
        self.unreadable: dict[str, str] = {}  # lock files read_all could not read, and why

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
        return self.lost is None and self._name is not None and now - self.refreshed < LEASE_S - REFRESH_S

    def ensure_held(self) -> None:
        """Raise LeaseLost unless the lease is fresh: called before committing (a snapshot)."""
        if not self.is_fresh():
            self._lose()
            assert self.lost is not None
            raise LeaseLost(self.lost.message)

    def read_all(self) -> dict[str, LockInfo]:
        """Every readable lock. Unreadable ones (another key, damaged, over the size limit)
        are left out, each with its reason in ``unreadable``."""
        locks: dict[str, LockInfo] = {}
        self.unreadable = {}
        limit = OBJECT_LIMITS[FileType.LOCK]
        for fi in self._backend.list(FileType.LOCK):
            handle = Handle(FileType.LOCK, fi.name)
            try:
                if fi.size > limit:  # the listing tells, without a request
                    raise too_large(handle, limit, fi.size)
                raw = self._backend.load(handle, limit=limit)
                locks[fi.name] = msgspec.msgpack.decode(self._decrypt(raw), type=LockInfo)
            except ObjectNotFound:
                continue  # released meanwhile
            except (IntegrityError, msgspec.DecodeError, RecursionError) as exc:
                self.unreadable[fi.name] = str(exc)  # not a live lock of ours
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
        wait = REFRESH_S
        while not self._wait(self._stop, wait):
            if not self.is_fresh():  # suspended, or failing for too long: others may call it stale
                self._lose()
                return
            old = self._name
            try:
                self._name = self._write()
            except AmberError as exc:  # try again sooner, until the lease is no longer fresh
                self.refresh_error = exc.message
                wait = REFRESH_S / 4
                continue
            wait = REFRESH_S
            if old:
                with contextlib.suppress(AmberError):
                    self._backend.remove(Handle(FileType.LOCK, old))

    def _lose(self) -> None:
        if self.lost is not None:
            return
        age = self._clock() - self.refreshed
        why = f": {self.refresh_error}" if self.refresh_error else " (was the process suspended?)"
        self.lost = LeaseLost(
            f"the repository lock was not refreshed for {age:.0f} s{why}; stopped, since another "
            "process may treat the lock as stale"
        )
        if self._on_lost is not None:
            self._on_lost(self.lost)

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
