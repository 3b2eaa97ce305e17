"""unlock: remove lock files that no longer protect anything.

Locks are leases and stale ones are ignored anyway (repository/lock.py), so
unlock is housekeeping, never a prerequisite. A stale lock has an expired lease
or was taken on this host by a process that no longer exists. ``remove_all``
also removes live locks and unreadable lock files: only for an operator who
knows that no other amber process is running.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from amber.errors import ObjectNotFound
from amber.repository import Repository
from amber.repository.lock import LEASE_S, LockInfo, is_stale


@dataclass
class LockEntry:
    name: str
    info: LockInfo | None  # None: the file could not be read or decrypted
    reason: str  # why it is stale, or "live"


@dataclass
class UnlockResult:
    removed: list[LockEntry] = field(default_factory=list)
    kept: list[LockEntry] = field(default_factory=list)  # live (or unreadable) locks left alone


def _classify(name: str, info: LockInfo | None, now: float) -> LockEntry:
    if info is None:
        return LockEntry(name, None, "unreadable")
    if now - info.time > LEASE_S:
        return LockEntry(name, info, f"lease expired {int(now - info.time - LEASE_S)} s ago")
    if is_stale(info, now):
        return LockEntry(name, info, f"process {info.pid} no longer exists")
    return LockEntry(name, info, "live")


def unlock(repo: Repository, remove_all: bool = False, now: float | None = None) -> UnlockResult:
    """Remove stale lock files (all lock files with ``remove_all``)."""
    now = time.time() if now is None else now
    infos = repo.lock_infos()
    result = UnlockResult()
    for name in repo.lock_names():
        entry = _classify(name, infos.get(name), now)
        stale = entry.reason not in ("live", "unreadable")
        if not (stale or remove_all):
            result.kept.append(entry)
            continue
        try:
            repo.remove_lock(name)
        except ObjectNotFound:
            continue  # its holder refreshed or released it meanwhile
        result.removed.append(entry)
    return result
