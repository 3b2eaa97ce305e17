"""Prune: reclaim space with two-phase deletion, safe while backups run (design §13a).

One run:

1. Walk every snapshot, marking used blobs in the index (``prune_refs``).
   Blobs a snapshot needs but the index lacks are rescued from packs pending
   deletion or left unindexed; if some stay missing, prune stops.
2. Finish older deletion markers whose lock holders are all gone (or whose
   grace period passed): delete their packs, then the marker.
3. Plan (``prune_plan``), then phase 1: copy the used blobs of packs to
   repack into new packs (indexed as usual), write index files that leave out
   every doomed pack, remove the index files they supersede, and record the
   doomed packs with the live lock holders in a deletion marker.
4. Phase 2 right away if no other lock holder was live at the mark: walk the
   snapshots written meanwhile, rescue what they need, delete the rest.

A crash anywhere leaves a consistent repository; the next prune finishes.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from amber.engine.progress import NullProgress, Progress
from amber.engine.prune_plan import PackStat, PlanOptions, PrunePlan, parse_max_unused, plan_prune
from amber.engine.prune_refs import References
from amber.errors import IntegrityError, ObjectNotFound, RepositoryLocked, UsageError
from amber.repository import BlobType, Repository
from amber.repository.lock import is_stale
from amber.storage import FileType, Handle

DELETE_GRACE_S = 24 * 3600.0  # after this, a marked pack goes even if an old lock holder lives on
_INDEX_ROWS_PER_FILE = 200_000
Holder = tuple[str, int, float]  # (hostname, pid, acquired): one lock holder across refreshes


class HeldLock(Protocol):
    def is_fresh(self, now: float | None = None) -> bool: ...


@dataclass
class PruneOptions:
    max_unused: str = "5%"
    max_repack_size: int | None = None
    recompress: int | None = None  # zstd level for rewritten data
    dry_run: bool = False
    grace_s: float = DELETE_GRACE_S
    # blob IDs that must leave storage (purge): every pack holding an unused copy of one
    # is deleted or repacked, whatever --max-unused and --max-repack-size allow
    erase: frozenset[bytes] = frozenset()
    # WAL records a dry run would have expired first (design §12d): their blobs count as unused
    wal_dropped: frozenset[str] = frozenset()


@dataclass
class PruneResult:
    plan: PrunePlan
    dry_run: bool = False
    snapshots: int = 0
    deleted_packs: int = 0  # removed from storage in this run (any marker)
    deleted_bytes: int = 0
    pending_packs: int = 0  # marked, waiting for older lock holders to finish
    pending_bytes: int = 0
    rescued_packs: int = 0
    index_written: int = 0
    index_removed: int = 0
    warnings: list[str] = field(default_factory=list)
    wal_removed: int = 0  # archived WAL files no kept base backup needs (services/wal.py)
    wal_removed_bytes: int = 0
    wal_kept: int = 0

    def as_dict(self) -> dict[str, Any]:
        p = self.plan
        return {
            "dry_run": self.dry_run,
            "snapshots": self.snapshots,
            "kept": {"packs": p.keep.packs, "blobs": p.keep.blobs, "bytes": p.keep.bytes},
            "repacked": {"packs": p.repacked.packs, "blobs": p.repacked.blobs, "bytes": p.repacked.bytes},
            "deleted": {"packs": self.deleted_packs, "bytes": self.deleted_bytes},
            "marked": {"packs": p.deleted.packs + p.repacked.packs, "blobs": p.deleted.blobs},
            "pending": {"packs": self.pending_packs, "bytes": self.pending_bytes},
            "rescued_packs": self.rescued_packs,
            "unused_bytes_after": p.unused_after,
            "index_files": {"written": self.index_written, "removed": self.index_removed},
            "wal": {
                "removed": self.wal_removed,
                "removed_bytes": self.wal_removed_bytes,
                "kept": self.wal_kept,
            },
            "warnings": self.warnings,
        }


def plan_options(opts: PruneOptions) -> PlanOptions:
    limits = parse_max_unused(opts.max_unused)
    if opts.recompress is not None and not 1 <= opts.recompress <= 22:
        raise UsageError("--recompress takes a zstd level from 1 to 22")
    return PlanOptions(
        max_unused=limits.max_unused, max_unused_bytes=limits.max_unused_bytes,
        max_repack_size=opts.max_repack_size, recompress=opts.recompress is not None,
    )  # fmt: skip


class Pruner:
    def __init__(
        self, repo: Repository, lock: HeldLock, options: PruneOptions | None = None,
        progress: Progress | None = None, clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self._clock = clock  # injectable: tests age a lease or a deletion marker without waiting
        self._repo = repo
        self._lock = lock
        repo.cancel.watch()  # safe points: each pack copied or deleted
        self._opts = options or PruneOptions()
        self._plan_opts = plan_options(self._opts)
        self._progress = progress or NullProgress()
        self._refs = References(repo, self._opts.wal_dropped)
        self._stored: dict[str, int] = {}

    # -- the run ------------------------------------------------------------
    def run(self) -> PruneResult:
        repo, blobs = self._repo, self._repo.blobs
        if repo.index_errors:
            raise IntegrityError(
                f"{len(repo.index_errors)} index file(s) cannot be read; run `amber repair index` first"
            )
        self._stored = {fi.name: fi.size for fi in repo.backend.list(FileType.PACK)}
        self._refs.reset()
        self._refs.walk_new()
        if self._refs.missing:
            # A backup that finished after this repository was opened (during `forget --prune`'s
            # forget, say) wrote index files this index lacks: load them before anything counts
            # as missing, and list the packs again, so rescue sees packs stored since.
            blobs.load_new_index_files()
            self._refs.resolve_missing()
            self._stored = {fi.name: fi.size for fi in repo.backend.list(FileType.PACK)}
        result = PruneResult(PrunePlan(), dry_run=self._opts.dry_run)
        self._rescue(result, self._candidates())
        if self._refs.missing:
            raise IntegrityError(
                f"{len(self._refs.missing)} blob(s) referenced by snapshots are missing from the "
                "repository; prune stopped. Run `amber check`, then `amber repair snapshots`"
            )
        for name, mark in sorted(blobs.pending.items(), key=lambda m: m[1].time):
            if not self._opts.dry_run and self._eligible(mark.time, mark.holders):
                self._finish(name, mark.packs, result)
        pending = {p for m in blobs.pending.values() for p in m.packs}
        usage = {
            pack: PackStat(u.blobs, u.bytes, u.used_blobs, u.used_bytes, u.type)
            for pack, u in blobs.index.usage().items()
        }
        plan_opts = self._plan_opts
        if self._opts.erase:
            must_go = frozenset(blobs.index.packs_with_unused(self._opts.erase))
            plan_opts = dataclasses.replace(plan_opts, must_go=must_go)
        plan = plan_prune(usage, self._stored, pending, plan_opts)
        result.plan = plan
        result.snapshots = len(self._refs.walked)
        if plan.damaged_missing:
            raise IntegrityError(
                f"{len(plan.damaged_missing)} pack(s) holding referenced data are missing; "
                "run `amber repair index`, then `amber repair snapshots`"
            )
        if not self._opts.dry_run and (plan.doomed or plan.drop_missing):
            marker, holders = self._phase1(plan, {p: u.blobs for p, u in usage.items()}, result)
            if marker and self._eligible(self._clock(), holders):
                self._phase2_now(marker, set(plan.doomed), result)
        self._count_pending(result)
        return result

    def _candidates(self) -> dict[str, int]:
        """Stored packs the index lacks: pending deletion or unindexed."""
        indexed = self._repo.blobs.index.packs()
        return {p: s for p, s in self._stored.items() if p not in indexed}

    def _rescue(self, result: PruneResult, candidates: dict[str, int]) -> None:
        if not self._refs.missing:
            return
        if self._opts.dry_run:
            result.warnings.append(
                f"{len(self._refs.missing)} referenced blob(s) are not indexed; "
                "prune would try to rescue them from unindexed packs, or stop"
            )
            self._refs.missing.clear()
            return
        rescued = self._refs.rescue(candidates)
        result.rescued_packs += len(rescued)
        result.index_written += len(rescued)
        if rescued:
            result.warnings.append(
                f"re-indexed {len(rescued)} pack(s) that snapshots still need "
                "(a backup deduplicated against data marked for deletion)"
            )

    # -- phase 1 ------------------------------------------------------------
    def _phase1(
        self, plan: PrunePlan, sizes: dict[str, int], result: PruneResult
    ) -> tuple[str | None, list[Holder]]:
        """``sizes``: rows per indexed pack, to size the rewritten index files."""
        blobs = self._repo.blobs
        gone = {*plan.delete, *plan.repack, *plan.drop_missing}
        to_copy = blobs.index.used_in(set(plan.repack))
        blobs.index.remove_packs(gone)
        if to_copy:
            self._copy(to_copy)
        affected = sorted(f for f, packs in blobs.index_files.items() if any(p in gone for p in packs))
        kept = sorted({p for f in affected for p in blobs.index_files[f] if p not in gone})
        if affected:  # files that only name replaced ones are folded into the new last file
            affected += sorted(f for f, ps in blobs.index_files.items() if not ps and f not in blobs.pending)
        # rewrite in batches, so only one file's rows are ever held as objects; only the last
        # names the replaced files (design §8): readers ignore a file once it is superseded
        batch: set[str] = set()
        count = 0
        for i, pack in enumerate(kept):
            batch.add(pack)
            count += sizes.get(pack, 0)
            last = i == len(kept) - 1
            if count >= _INDEX_ROWS_PER_FILE or last:
                supersedes = blobs.superseding(affected) if last else []
                blobs.save_index_file(blobs.index.pack_rows(batch), supersedes)
                result.index_written += 1
                batch, count = set(), 0
        if affected and not kept:
            blobs.save_index_file({}, blobs.superseding(affected))
            result.index_written += 1
        for name in affected:  # only now: their replacements are written
            blobs.remove_index_file(name)
            result.index_removed += 1
        doomed = plan.doomed
        if not doomed:
            return None, []
        # Holders are read after the old index files are gone: a process whose
        # lock appears later sees that on locking and reloads the index.
        holders = sorted(self._live_holders())
        marker = blobs.save_marker(self._clock(), sorted(doomed), holders)
        return marker, holders

    def _copy(self, to_copy: dict[str, list[Any]]) -> None:
        blobs = self._repo.blobs
        level = blobs.compression_level
        if self._opts.recompress is not None:
            blobs.set_compression_level(self._opts.recompress)
        try:
            for pack in sorted(to_copy):
                self._repo.cancel.check()  # a safe point: nothing is deleted before phase 1 ends
                kinds = {blob_id: loc.type for blob_id, loc in to_copy[pack]}
                for blob_id, data in blobs.load_from_pack(pack, to_copy[pack]):
                    if isinstance(data, IntegrityError):
                        raise IntegrityError(
                            f"pack {pack[:16]}: blob {blob_id.hex()[:16]} is damaged ({data}); "
                            "nothing was deleted. Run `amber check --read-data`"
                        )
                    blobs.save(BlobType(kinds[blob_id]), data, blob_id)
                    self._progress.bytes_done(len(data))
            blobs.flush()
        finally:
            blobs.set_compression_level(level)

    # -- phase 2 ------------------------------------------------------------
    def _live_holders(self) -> set[Holder]:
        me = (socket.gethostname(), os.getpid())
        return {
            info.holder
            for info in self._repo.lock_infos().values()
            if not is_stale(info, self._clock()) and (info.hostname, info.pid) != me
        }

    def _eligible(self, mark_time: float, holders: Iterable[Holder]) -> bool:
        if self._clock() - mark_time >= self._opts.grace_s:
            return True
        live = self._live_holders()
        return not any(tuple(h) in live for h in holders)

    def _phase2_now(self, marker: str, doomed: set[str], result: PruneResult) -> None:
        """Snapshots written since the walk may need doomed packs: rescue, then delete."""
        self._repo.blobs.load_new_index_files()  # their trees are in index files written since
        self._refs.walk_new()
        if self._refs.missing:
            self._rescue(result, {p: s for p, s in self._stored.items() if p in doomed})
        if self._refs.missing:
            result.warnings.append(
                f"{len(self._refs.missing)} referenced blob(s) are missing; deletion postponed"
            )
            return
        self._finish(marker, sorted(doomed), result)

    def _finish(self, marker: str, packs: list[str], result: PruneResult) -> None:
        blobs = self._repo.blobs
        mark = blobs.pending.get(marker)
        later = {
            p for name, m in blobs.pending.items()
            if name != marker and mark is not None and m.time > mark.time for p in m.packs
        }  # fmt: skip
        if not self._lock.is_fresh(self._clock()):
            raise RepositoryLocked("our lock was not refreshed in time; not deleting anything")
        indexed = blobs.index.packs()
        for pack in packs:
            self._repo.cancel.check()  # a safe point: the marker stays, the next prune finishes
            if pack in indexed or pack in later:
                continue  # re-indexed (rescued, repaired) or marked again later: not ours to delete
            try:
                self._repo.backend.remove(Handle(FileType.PACK, pack))
            except ObjectNotFound:
                continue  # an interrupted earlier run deleted it already
            result.deleted_packs += 1
            result.deleted_bytes += self._stored.pop(pack, 0)
        blobs.remove_index_file(marker)
        result.index_removed += 1

    def _count_pending(self, result: PruneResult) -> None:
        packs = {p for m in self._repo.blobs.pending.values() for p in m.packs}
        result.pending_packs = len(packs & self._stored.keys())
        result.pending_bytes = sum(self._stored[p] for p in packs if p in self._stored)
