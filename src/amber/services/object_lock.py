"""Extend S3 Object Lock retention on everything the kept snapshots still need.

New objects are locked for ``s3.lock-days`` when written. Run this regularly
(e.g. after each ``forget``; ``amber run`` does it after forget/prune) so that
packs still referenced by a snapshot stay immutable while unreferenced ones are
left to expire and be pruned: ransomware holding the client's credentials cannot
delete history that is still in use.

The calls go through the backend's wrappers (retry, connection slots), like any
other request. An object that should be there but is missing does not stop the
others from being extended; it is reported afterwards as an IntegrityError.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from amber.errors import IntegrityError, NotFound, ObjectNotFound, UsageError
from amber.repository import Repository
from amber.storage.base import FileType, Handle
from amber.storage.url import retention_layer


@dataclass(frozen=True, slots=True)
class RetentionResult:
    until: dt.datetime
    objects: int  # objects looked at
    extended: int  # objects whose retention moved later
    packs: int  # referenced packs among the objects


def referenced_packs(repo: Repository) -> set[str]:
    """Packs holding any blob (tree or data) that some snapshot references."""
    packs: set[str] = set()
    seen: set[bytes] = set()
    for snapshot in repo.snapshots().values():
        stack = [snapshot.tree]
        while stack:
            tree_id = stack.pop()
            if tree_id in seen:
                continue
            seen.add(tree_id)
            try:
                packs.add(repo.blobs.locate(tree_id).pack)
                tree = repo.load_tree(tree_id)
            except (NotFound, IntegrityError):
                continue  # check reports damage; nothing to lock here
            for node in tree.nodes:
                if node.subtree:
                    stack.append(node.subtree)
                for blob in node.content:
                    try:
                        packs.add(repo.blobs.locate(blob).pack)
                    except NotFound:
                        continue
    return packs


def extend_retention(
    repo: Repository, days: int | None = None, now: dt.datetime | None = None
) -> RetentionResult:
    layer = retention_layer(repo.backend)
    if layer is None or layer.retention_days() <= 0:
        raise UsageError(
            "this repository has no Object Lock retention: use an s3: repository with "
            "-o s3.lock-mode=governance|compliance -o s3.lock-days=N"
        )
    days = days if days is not None else layer.retention_days()
    if days <= 0:
        raise UsageError("--days must be positive")
    until = (now or dt.datetime.now(dt.UTC)) + dt.timedelta(days=days)
    packs = referenced_packs(repo)
    handles = [Handle(FileType.CONFIG)]
    for type_ in FileType:  # everything but locks (they must go) and packs (only referenced ones)
        if type_ in (FileType.CONFIG, FileType.LOCK, FileType.PACK):
            continue
        handles.extend(Handle(type_, fi.name) for fi in repo.backend.list(type_))
    handles.extend(Handle(FileType.PACK, p) for p in sorted(packs))
    extended = 0
    missing: list[str] = []
    for handle in handles:
        try:
            extended += layer.extend_retention(handle, until)
        except ObjectNotFound:
            missing.append(f"{handle.type.value}/{handle.name}".rstrip("/"))
    if missing:
        raise IntegrityError(
            f"{len(missing)} object(s) the snapshots need are missing ({', '.join(missing[:3])}); "
            f"retention of the other {len(handles) - len(missing)} was extended to {until:%Y-%m-%d}"
        )
    return RetentionResult(until, len(handles), extended, len(packs))
