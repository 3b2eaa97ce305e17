"""``amber repair packs --from OTHER``: heal missing or damaged blobs from a replica.

1. Find bad packs here: indexed but missing or truncated, and (``read_data``)
   packs whose blobs fail verification. Every blob in them is suspect.
2. Salvage: blobs of a damaged pack that still verify are stored again.
3. For each snapshot here that references a bad blob, take the replica's copy
   of the same snapshot (matched by identity) and copy its tree back with the
   copier (replica -> here). IDs are keyed hashes, so the rewritten tree must
   come out with this snapshot's own tree ID; only blobs that are bad here are
   written, and each one is verified against its ID on the way.
4. Flush (new packs, then an index file), remove the damaged packs, and
   rebuild the index from pack headers so no entry points at a lost pack.

A crash before step 4 leaves extra healthy packs (harmless); during step 4
the rebuilt index is written before old index files go, as ``repair index``
does. Running it again finishes the job.
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass, field

from amber.engine.copier import Copier
from amber.engine.copyplan import identity
from amber.errors import AmberError, UsageError
from amber.repository import BlobType, Repository
from amber.repository.blobstore import BlobStore
from amber.services import session
from amber.services.context import OperationContext
from amber.storage import FileType, Handle

_MIN_TAIL = 28 + 1 + 4  # smallest sealed header and its length


@dataclass
class HealResult:
    bad_packs: list[str] = field(default_factory=list)
    bad_blobs: int = 0
    salvaged: int = 0
    healed_snapshots: list[str] = field(default_factory=list)
    unhealed_snapshots: list[tuple[str, str]] = field(default_factory=list)  # (ID, why)
    blobs_written: int = 0
    index_rebuilt: bool = False


class _HealingWriter:
    """Writes into new packs here, only blobs that are not healthy here already.

    To the copier, trees never count as present (a healthy tree may have bad
    blobs below it, so every tree is descended); a data blob does when it is
    indexed outside the bad packs.
    """

    def __init__(self, repo: Repository, bad: set[bytes]) -> None:
        self._repo = repo
        self._bad = bad
        self.store = BlobStore(repo.backend, repo.key, repo.config.compression_level, repo.sealer)

    def _healthy(self, blob_id: bytes) -> bool:
        return (blob_id in self._repo.blobs.index and blob_id not in self._bad) or self.store.has(blob_id)

    def has(self, blob_id: bytes) -> bool:
        return self._repo.blobs.index.blob_type(blob_id) is BlobType.DATA and self._healthy(blob_id)

    def save(self, type: BlobType, data: bytes | memoryview, blob_id: bytes | None = None) -> bool:
        if blob_id is not None and self._healthy(blob_id):
            return False
        return self.store.save(type, data, blob_id)


def _find_bad(repo: Repository, read_data: bool) -> tuple[set[str], set[bytes], dict[str, list[bytes]]]:
    """(bad packs, bad blob IDs, per damaged-but-present pack its blobs that still verify)."""
    stored = {fi.name: fi.size for fi in repo.backend.list(FileType.PACK)}
    by_pack: dict[str, list[bytes]] = {}
    need: dict[str, int] = {}
    for blob_id, loc in repo.blobs.index.blobs():
        by_pack.setdefault(loc.pack, []).append(blob_id)
        need[loc.pack] = max(need.get(loc.pack, 0), loc.offset + loc.length + _MIN_TAIL)
    bad_packs = {p for p in by_pack if p not in stored or stored[p] < need[p]}
    bad = {b for p in bad_packs for b in by_pack[p]}
    salvage: dict[str, list[bytes]] = {}
    if read_data:
        for pack in sorted(by_pack.keys() - bad_packs):
            failed: list[bytes] = []
            good: list[bytes] = []
            for blob_id, plain in repo.blobs.load_from_pack(
                pack, [(b, repo.blobs.locate(b)) for b in by_pack[pack]]
            ):
                (failed if isinstance(plain, AmberError) else good).append(blob_id)
            if failed:
                bad_packs.add(pack)
                bad.update(failed)
                salvage[pack] = good
    return bad_packs, bad, salvage


def _snapshots_needing(repo: Repository, bad: set[bytes]) -> list[str]:
    """Snapshots whose trees reach a bad blob (or a tree that cannot be read)."""
    hit = []
    for sid, snap in repo.snapshots([]).items():
        stack, seen = [snap.tree], set()
        damaged = False
        while stack and not damaged:
            tree_id = stack.pop()
            if tree_id in seen:
                continue
            seen.add(tree_id)
            if tree_id in bad:
                damaged = True
                break
            try:
                nodes = repo.load_tree(tree_id).nodes
            except AmberError:
                damaged = True
                break
            for n in nodes:
                if any(c in bad for c in n.content):
                    damaged = True
                    break
                if n.subtree:
                    stack.append(n.subtree)
        if damaged:
            hit.append(sid)
    return sorted(hit)


def heal(repo: Repository, replica: Repository, read_data: bool = False) -> HealResult:
    """Heal ``repo`` from ``replica``; both open, ``repo`` locked exclusively by the caller."""
    if repo.id == replica.id:
        raise UsageError("the replica is this repository")
    result = HealResult()
    bad_packs, bad, salvage = _find_bad(repo, read_data)
    result.bad_packs, result.bad_blobs = sorted(bad_packs), len(bad)
    if not bad:
        return result
    writer = _HealingWriter(repo, bad)
    for pack, good in salvage.items():
        for blob_id, plain in repo.blobs.load_from_pack(pack, [(b, repo.blobs.locate(b)) for b in good]):
            if not isinstance(plain, AmberError):
                writer.store.save(repo.blobs.locate(blob_id).type, plain, blob_id)  # its pack goes
                result.salvaged += 1
    mine = repo.snapshots([])
    theirs = {identity(sid, s): s for sid, s in replica.snapshots([]).items()}
    same_ids = replica.shares_blob_ids(repo)
    copier = Copier(replica, replica.blobs, repo, writer, repo.key.blob_id, same_ids=same_ids)
    for sid in _snapshots_needing(repo, bad):
        twin = theirs.get(identity(sid, mine[sid]))
        if twin is None:
            result.unhealed_snapshots.append((sid, "the replica has no copy of this snapshot"))
            continue
        try:
            tree = copier.copy_tree(twin.tree, (twin.tree, mine[sid].tree))
        except AmberError as exc:
            result.unhealed_snapshots.append((sid, f"the replica's copy is unreadable: {exc.message}"))
            continue
        if tree != mine[sid].tree:
            result.unhealed_snapshots.append((sid, "the replica's copy has different content"))
            continue
        result.healed_snapshots.append(sid)
    writer.store.flush()
    result.blobs_written = writer.store.stats.data_blobs + writer.store.stats.tree_blobs
    for pack in sorted(bad_packs):
        with contextlib.suppress(AmberError):  # a missing pack is already gone
            repo.backend.remove(Handle(FileType.PACK, pack))
    result.index_rebuilt = _rebuild_index(repo)
    return result


def _rebuild_index(repo: Repository) -> bool:
    """Rebuild the index from pack headers with ``repair index``, when this build has it."""
    try:
        repair = importlib.import_module("amber.services.repair")
    except ModuleNotFoundError:
        return False
    repair.repair_index(repo)
    return True


def heal_from(
    location: str, passwords: session.PasswordSource, replica_location: str,
    replica_passwords: session.PasswordSource, read_data: bool = False, ctx: OperationContext | None = None,
) -> HealResult:  # fmt: skip
    """Open both (this one exclusively: damaged packs are removed), then :func:`heal`."""
    with (
        session.opened(location, passwords, exclusive=True, ctx=ctx) as repo,
        session.opened(replica_location, replica_passwords, ctx=ctx) as replica,
    ):
        return heal(repo, replica, read_data)
