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

from amber.engine.copier import Copier, CopyOptions, CopyStats
from amber.engine.copyplan import choose_reference, copied_map, copied_snapshot, missing
from amber.engine.progress import Progress
from amber.errors import IntegrityError, ObjectNotFound, UsageError
from amber.repository import Repository, Snapshot
from amber.services import session
from amber.services.snapshots import SnapshotFilter, resolve, select
from amber.storage.url import BackendOptions


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
    if src.id == dst.id:
        raise UsageError("source and destination are the same repository")
    selected = _selected(src, req)
    source = src.snapshots([])
    destination = dst.snapshots([])
    todo = missing(selected, destination)
    copied = copied_map(source, destination)
    copier = Copier(
        src, src.blobs, dst, dst.blobs, dst.key.blob_id, options, progress, same_ids=src.shares_blob_ids(dst)
    )
    result = CopyResult(already=len(selected) - len(todo), stats=copier.stats)
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
        dst.blobs.flush()
        new = copied_snapshot(sid, snap, tree, copied.get(snap.parent))
        new_id = dst.save_snapshot(new)
        destination[new_id] = new
        copied[sid] = new_id
        result.copied.append((sid, new_id))
    dst.blobs.flush()
    return result


def copy(
    src_location: str, src_passwords: session.PasswordSource, dst_location: str,
    dst_passwords: session.PasswordSource, req: CopyRequest | None = None,
    options: CopyOptions | None = None, progress: Progress | None = None,
    src_options: BackendOptions | None = None, dst_options: BackendOptions | None = None,
) -> CopyResult:  # fmt: skip
    """Open both repositories (shared locks) and copy."""
    with (
        session.opened(src_location, src_passwords, options=src_options) as src,
        session.opened(dst_location, dst_passwords, options=dst_options) as dst,
    ):
        return copy_snapshots(src, dst, req, options, progress)
