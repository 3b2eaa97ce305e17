"""Prune's first step on a full disk: free space while writing nothing.

Prune writes a lock, index files and a deletion marker, so on a disk with no
space left it cannot start. A backup that failed for lack of space leaves packs
that no index lists. When no other process holds a lock (a running backup's
unindexed packs are protected by its lock, design §13a), no index file is
damaged and every blob the snapshots use is indexed, those packs can be needed
by nothing: they are deleted, so the ordinary prune that follows has room.
"""

from __future__ import annotations

from dataclasses import dataclass

from amber.engine.prune_refs import References
from amber.repository import Repository
from amber.repository.lock import is_stale
from amber.storage import FileType, Handle


@dataclass
class Freed:
    packs: int = 0
    bytes: int = 0
    why_not: str = ""  # why nothing could be freed safely


def free_leftover_packs(repo: Repository) -> Freed:
    """Delete the packs no index lists and no deletion marker holds, if that is safe now."""
    if repo.index_errors:
        return Freed(why_not="an index file cannot be read, so unlisted packs may hold needed data")
    infos = repo.lock_infos()
    held = [n for n in repo.lock_names() if n not in infos or not is_stale(infos[n])]
    if held:
        return Freed(why_not=f"{len(held)} lock(s) held by another process; wait, or run `amber unlock`")
    refs = References(repo)
    refs.reset()
    refs.walk_new()
    if refs.missing:
        return Freed(why_not="snapshots use blobs no index lists; run `amber check`")
    indexed = repo.blobs.index.packs()
    pending = {p for mark in repo.blobs.pending.values() for p in mark.packs}
    freed = Freed()
    for fi in repo.backend.list(FileType.PACK):
        if fi.name not in indexed and fi.name not in pending:
            repo.backend.remove(Handle(FileType.PACK, fi.name))
            freed.packs += 1
            freed.bytes += fi.size
    if not freed.packs:
        freed.why_not = "no pack is left over from a failed backup"
    return freed
