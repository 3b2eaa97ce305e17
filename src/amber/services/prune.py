"""The prune use case: reclaim space from removed snapshots (design §13a).

Entry point for other services (``forget --prune``, ``run``)::

    from amber.services.prune import PruneOptions, prune
    result = prune(repo, PruneOptions(max_unused="5%"), progress)  # -> PruneResult

``repo`` is an open :class:`~amber.repository.Repository`. If the caller already
holds an exclusive or maintenance lock on it, prune runs under that lock;
otherwise it takes a maintenance lock itself (compatible with running backups,
exclusive against another prune or repair). Locks this process holds never
delay the deletion phase. Append-only repositories refuse with
``AppendOnlyViolation``.

Archived PostgreSQL WAL that no kept base backup needs is removed before the
packs, so the data blobs only its records used are reclaimed in the same run
(services/wal.py, design §12d).

On a full disk (no room even for the lock) prune first deletes the packs a
failed backup left, writing nothing (engine/prune_rescue.py), then runs as usual.
"""

from __future__ import annotations

import dataclasses

from amber.engine.progress import Progress
from amber.engine.prune_rescue import free_leftover_packs
from amber.engine.pruner import HeldLock, PruneOptions, Pruner, PruneResult
from amber.errors import AppendOnlyViolation, DiskFull
from amber.repository import Repository
from amber.services.wal import expire

__all__ = ["PruneOptions", "PruneResult", "prune"]


def prune(
    repo: Repository, options: PruneOptions | None = None, progress: Progress | None = None
) -> PruneResult:
    options = options or PruneOptions()
    progress = progress or repo.events
    if getattr(repo, "append_only", False) and not options.dry_run:
        raise AppendOnlyViolation("repository is append-only: prune refused")
    held = next((lk for lk in reversed(repo.held_locks) if lk.exclusive or lk.maintenance), None)
    if held is not None:
        return _run(repo, held, options, progress)
    try:
        with repo.lock(maintenance=True) as lock:
            return _run(repo, lock, options, progress)
    except DiskFull as exc:
        if options.dry_run or repo.held_locks:
            raise
        freed = free_leftover_packs(repo)
        if not freed.packs:
            why = f"prune could not free space without writing: {freed.why_not}"
            raise DiskFull(f"{exc.message}; {why}") from exc
    with repo.lock(maintenance=True) as lock:
        result = _run(repo, lock, options, progress)
    result.deleted_packs += freed.packs
    result.deleted_bytes += freed.bytes
    result.warnings.append(f"the disk was full: first removed {freed.packs} pack(s) a failed backup left")
    return result


def _run(repo: Repository, lock: HeldLock, options: PruneOptions, progress: Progress) -> PruneResult:
    """Archived WAL no kept base backup needs goes first (design §12d), under the same lock, so
    the blobs of the records it drops are freed by this run's packs."""
    wal = expire(repo, dry_run=options.dry_run)
    if options.dry_run:  # nothing was removed: the walk must not count what would have been
        options = dataclasses.replace(options, wal_dropped=frozenset(wal.dropped))
    result = Pruner(repo, lock, options, progress).run()
    result.wal_removed, result.wal_removed_bytes, result.wal_kept = wal.removed, wal.removed_bytes, wal.kept
    if wal.refused:
        result.warnings.append(f"archived WAL: {'; '.join(wal.refused[:3])}")
    return result
