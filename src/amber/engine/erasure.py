"""Proof of erasure: after a purge, where could the purged blobs still be?

Two questions, answered from the repository itself:

* **Retained by dedup.** A purged blob that a remaining snapshot still
  references holds bytes some kept file (or directory) shares: it stays, by
  design. :func:`referenced` walks every remaining snapshot once (each tree
  once) and, only when something is retained, walks again with paths, into the
  trees that lead to such a blob, to name the kept paths.
* **Still stored.** Every other purged blob must be gone: in no index entry,
  and in no pack header. :func:`stored` reads the header of every stored pack
  (ranged loads; the header lists each blob a pack holds), so a copy left in
  an unindexed pack, a duplicate or a pack still awaiting deletion is found.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from amber.errors import AmberError, IntegrityError, ObjectNotFound
from amber.repository import Node, Repository, Tree
from amber.storage import FileType

PLACES_PER_BLOB = 5  # kept paths named per retained blob


@dataclass
class ErasureReport:
    erased: int = 0  # purged blobs confirmed gone
    retained: dict[bytes, list[tuple[str, str]]] = field(default_factory=dict)  # blob -> (snapshot, path)
    still_indexed: set[bytes] = field(default_factory=set)
    still_stored: dict[str, set[bytes]] = field(default_factory=dict)  # pack -> purged blobs it holds
    unreadable: list[str] = field(default_factory=list)  # packs whose header could not be read
    packs_read: int = 0

    @property
    def ok(self) -> bool:
        return not (self.still_indexed or self.still_stored or self.unreadable)

    def kept_paths(self) -> list[str]:
        return sorted({path for places in self.retained.values() for _, path in places})


def verify_erased(repo: Repository, targets: set[bytes]) -> ErasureReport:
    """Which of ``targets`` remaining snapshots keep, and whether the others left storage."""
    report = ErasureReport()
    if not targets:
        return report
    report.retained = referenced(repo, targets)
    gone = targets - report.retained.keys()
    report.still_indexed = {b for b in gone if b in repo.blobs.index}
    for fi in repo.backend.list(FileType.PACK):
        repo.cancel.check()
        try:
            header = repo.blobs.read_pack_header(fi.name, fi.size)
        except (IntegrityError, ObjectNotFound) as exc:
            report.unreadable.append(f"{fi.name[:16]}: {exc}")
            continue
        report.packs_read += 1
        found = {b.id for b in header} & gone
        if found:
            report.still_stored[fi.name] = found
    left = report.still_indexed | {b for blobs in report.still_stored.values() for b in blobs}
    report.erased = len(gone - left)
    return report


def referenced(
    repo: Repository, targets: set[bytes], roots: dict[str, bytes] | None = None,
    load_tree: Callable[[bytes], Tree] | None = None,
) -> dict[bytes, list[tuple[str, str]]]:  # fmt: skip
    """Targets that snapshots reference, each with up to PLACES_PER_BLOB (snapshot, path).

    ``roots`` (snapshot ID -> root tree; default: the stored snapshots) and ``load_tree``
    let a dry run ask about the snapshots as a purge would leave them.
    """
    if roots is None:
        roots = {sid: snap.tree for sid, snap in repo.snapshots([]).items()}
    load = load_tree or repo.load_tree
    parents: dict[bytes, set[bytes]] = {}
    direct: set[bytes] = set()  # trees that list a target themselves
    hit: set[bytes] = set()
    seen: set[bytes] = set()
    for root in roots.values():
        if root in targets:
            hit.add(root)
        stack = [root]
        while stack:
            tree_id = stack.pop()
            if tree_id in seen:
                continue
            seen.add(tree_id)
            for node in _nodes(load, tree_id):
                found = targets.intersection(node.content)
                if node.subtree:
                    parents.setdefault(node.subtree, set()).add(tree_id)
                    stack.append(node.subtree)
                    if node.subtree in targets:
                        found.add(node.subtree)
                if found:
                    hit |= found
                    direct.add(tree_id)
    if not hit:
        return {}
    leads = set(direct)  # trees with a target somewhere below: the only ones the path walk enters
    frontier = list(direct)
    while frontier:
        for parent in parents.get(frontier.pop(), ()):
            if parent not in leads:
                leads.add(parent)
                frontier.append(parent)
    places: dict[bytes, list[tuple[str, str]]] = {b: [] for b in hit}
    for sid, root in sorted(roots.items()):
        if root in places and len(places[root]) < PLACES_PER_BLOB:
            places[root].append((sid, "/"))
        _name_places(load, sid, root, leads, targets, places)
    return places


def _name_places(load: Callable[[bytes], Tree], sid: str, root: bytes, leads: set[bytes], targets: set[bytes],
                 places: dict[bytes, list[tuple[str, str]]]) -> None:  # fmt: skip
    stack = [(root, b"")] if root in leads else []
    walked: set[tuple[bytes, bytes]] = set()
    while stack:
        tree_id, path = stack.pop()
        if (tree_id, path) in walked:
            continue
        walked.add((tree_id, path))
        for node in _nodes(load, tree_id):
            node_path = path + b"/" + node.name
            for blob_id in targets.intersection([*node.content, node.subtree]):
                kept = places[blob_id]
                if len(kept) < PLACES_PER_BLOB:
                    kept.append((sid, node_path.decode("utf-8", "backslashreplace")))
            if node.subtree in leads:
                stack.append((node.subtree, node_path))


def _nodes(load: Callable[[bytes], Tree], tree_id: bytes) -> list[Node]:
    try:
        return list(load(tree_id).nodes)
    except AmberError as exc:
        raise IntegrityError(
            f"tree {tree_id.hex()[:16]} cannot be read ({exc}); erasure cannot be verified: run check"
        ) from exc
