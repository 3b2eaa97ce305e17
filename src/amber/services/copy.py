"""The copy use case: snapshots from one repository into another.

Entry points:

* :func:`copy_snapshots` works on two opened (and locked) repositories;
* :func:`copy` opens and locks both first (shared locks: copy only adds).

Only snapshots whose identity (``original`` or ID) the destination lacks are
copied, oldest first, each compared against an earlier copy (its parent,
usually) so unchanged data is neither read nor written. Per snapshot the
destination gets data, then index, then the snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from amber.cancel import CancelToken
from amber.engine.copier import Copier, CopyOptions, CopyStats
from amber.engine.copypack import BlobWriter
from amber.engine.copyplan import choose_reference, copied_map, copied_snapshot, missing
from amber.engine.copyprocs import ProcessJobs
from amber.engine.progress import Progress
from amber.errors import IntegrityError, ObjectNotFound, UsageError
from amber.repository import BlobType, Repository, Snapshot, StoreSpec
from amber.services import session
from amber.services.context import OperationContext
from amber.services.snapshots import SnapshotFilter, resolve, select
from amber.services.wal import copy_wal
from amber.storage.faults import FaultInjectingBackend
from amber.storage.local import LocalBackend
from amber.storage.ratelimit import RateLimitedBackend
from amber.storage.url import BackendOptions, find_layer


@dataclass
class CopyRequest:
    snapshot_ids: list[str] = field(default_factory=list)  # ID prefixes or "latest"; empty: all matching
    filter: SnapshotFilter = field(default_factory=SnapshotFilter)


@dataclass
class CopyResult:
    copied: list[tuple[str, str]] = field(default_factory=list)  # (source ID, destination ID)
    already: int = 0  # selected snapshots the destination already had
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source ID, why)
    stats: CopyStats = field(default_factory=CopyStats)
    wal_copied: int = 0  # archived PostgreSQL WAL files copied (design §12d)


def _selected(repo: Repository, req: CopyRequest) -> list[tuple[str, Snapshot]]:
    if not req.snapshot_ids:
        return select(repo, req.filter)
    chosen = dict(resolve(repo, ref, req.filter) for ref in req.snapshot_ids)
    return list(chosen.items())


def copy_snapshots(
    src: Repository, dst: Repository, req: CopyRequest | Sequence[str] | None = None,
    options: CopyOptions | None = None, progress: Progress | None = None,
) -> CopyResult:  # fmt: skip
    """Copy the selected snapshots that ``dst`` does not have yet.

    ``req`` may be a plain list of snapshot IDs. Snapshots whose source data is
    damaged are skipped and listed in ``failed``; any destination error raises.
    """
    if req is None or not isinstance(req, CopyRequest):
        req = CopyRequest(list(req or []))
    progress = progress or dst.events
    if src.id == dst.id:
        raise UsageError("source and destination are the same repository")
    selected = _selected(src, req)
    dst.drop_missing_packs()  # a stale index entry must not stand for data the copy needs
    source = src.snapshots([])
    destination = dst.snapshots([])
    todo = missing(selected, destination)
    copied = copied_map(source, destination)
    same_ids = src.shares_blob_ids(dst)
    stats = CopyStats()
    runner = None
    if todo:
        runner = _worker_processes(src, dst, same_ids, options or CopyOptions(), stats, progress)
    writer: BlobWriter = dst.blobs if runner is None else _StoredByWorkers(dst.blobs, runner)
    copier = Copier(
        src, src.blobs, dst, writer, dst.key.blob_id, options, progress, same_ids, runner, stats,
        cancel=CancelToken.any_of(src.cancel, dst.cancel),  # a signal, or either lease lapsing
    )  # fmt: skip
    result = CopyResult(already=len(selected) - len(todo), stats=stats)
    try:
        _copy_each(src, dst, copier, runner, todo, source, destination, copied, result)
    except BaseException:
        if runner is not None:
            runner.close(abort=True)  # what workers still hold is not needed: no snapshot will use it
        raise
    if runner is not None:
        runner.close()
    wal = copy_wal(src, dst)  # the WAL travels with the base backups it completes
    result.wal_copied = wal.copied
    result.failed += [(f"wal/{name}", why) for name, why in wal.failed]
    return result


def _copy_each(
    src: Repository, dst: Repository, copier: Copier, runner: ProcessJobs | None,
    todo: list[tuple[str, Snapshot]], source: dict[str, Snapshot], destination: dict[str, Snapshot],
    copied: dict[str, str], result: CopyResult,
) -> None:  # fmt: skip
    for sid, snap in todo:
        ref_sid = choose_reference(sid, snap, source, copied)
        reference = None
        if ref_sid is not None:
            ref_dst = destination.get(copied[ref_sid])
            if ref_dst is not None:
                reference = (source[ref_sid].tree, ref_dst.tree)
        try:
            tree = copier.copy_tree(snap.tree, reference)
        except (IntegrityError, ObjectNotFound) as exc:
            result.failed.append((sid, f"source data is damaged: {exc.message}"))
            continue
        if runner is not None:  # the workers' packs and index files first
            for pack, rows in runner.flush().items():
                dst.blobs.index.add_pack(pack, rows)
        dst.blobs.flush()
        new = copied_snapshot(sid, snap, tree, copied.get(snap.parent))
        new_id = dst.save_snapshot(new)
        destination[new_id] = new
        copied[sid] = new_id
        result.copied.append((sid, new_id))
    dst.blobs.flush()


# Below this many source packs (16 MiB each), starting worker processes costs more than it saves.
_PROCESS_MIN_PACKS = 64


def _worker_processes(
    src: Repository, dst: Repository, same_ids: bool, options: CopyOptions, stats: CopyStats,
    progress: Progress | None,
) -> ProcessJobs | None:  # fmt: skip
    """Worker processes for a copy between two repositories on local disks, when it pays.

    Threads share one interpreter lock, so a threaded copy of many small blobs
    uses about one core; processes use them all. Remote backends are bound by
    the network, and a wrapper that limits rates or injects faults must see
    every request: both keep the threads.
    """
    if options.processes is False:
        return None
    locals_ = [find_layer(r.backend, LocalBackend) for r in (src, dst)]
    wrapped = (RateLimitedBackend, FaultInjectingBackend)
    plain = all(find_layer(r.backend, kind) is None for r in (src, dst) for kind in wrapped)
    if locals_[0] is None or locals_[1] is None or not plain:
        return None
    if options.processes is None and len(src.blobs.index.packs()) < _PROCESS_MIN_PACKS:
        return None
    return ProcessJobs(
        StoreSpec.of(locals_[0].location, src.blobs), StoreSpec.of(locals_[1].location, dst.blobs),
        same_ids, options.workers, stats, progress,
    )  # fmt: skip


class _StoredByWorkers:
    """The destination store, plus what worker processes stored (not in its index until a flush)."""

    def __init__(self, store: BlobWriter, runner: ProcessJobs) -> None:
        self._store = store
        self._runner = runner

    def has(self, blob_id: bytes) -> bool:
        return self._store.has(blob_id) or blob_id in self._runner.written

    def save(self, type: BlobType, data: bytes | memoryview, blob_id: bytes | None = None) -> bool:
        return self._store.save(type, data, blob_id)


def copy(
    src_location: str, src_passwords: session.PasswordSource, dst_location: str,
    dst_passwords: session.PasswordSource, req: CopyRequest | None = None,
    options: CopyOptions | None = None, progress: Progress | None = None,
    src_options: BackendOptions | None = None, dst_options: BackendOptions | None = None,
    ctx: OperationContext | None = None,
) -> CopyResult:  # fmt: skip
    """Open both repositories (shared locks) and copy."""
    with (
        session.opened(src_location, src_passwords, options=src_options, ctx=ctx) as src,
        session.opened(dst_location, dst_passwords, options=dst_options, ctx=ctx) as dst,
    ):
        return copy_snapshots(src, dst, req, options, progress)
