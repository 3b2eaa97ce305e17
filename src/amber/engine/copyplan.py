"""Which snapshots a copy transfers, and what each copy is compared against. Pure, no I/O.

A snapshot's *identity* is its ``original`` field, or its own ID when it has
none. A copy records the identity of what it was copied from, so identities
match across any chain of copies (A -> B -> C) and a second copy skips it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec

from amber.repository import Snapshot


def identity(snapshot_id: str, snapshot: Snapshot) -> str:
    return snapshot.original or snapshot_id


def identities(snapshots: Mapping[str, Snapshot]) -> dict[str, str]:
    """identity -> snapshot ID (the oldest holder wins when several share one)."""
    found: dict[str, str] = {}
    for sid, snap in sorted(snapshots.items(), key=lambda item: (item[1].datetime, item[0])):
        found.setdefault(identity(sid, snap), sid)
    return found


def missing(
    selected: Iterable[tuple[str, Snapshot]], destination: Mapping[str, Snapshot]
) -> list[tuple[str, Snapshot]]:
    """Selected source snapshots whose identity the destination lacks, oldest first."""
    have = identities(destination)
    todo = [(sid, s) for sid, s in selected if identity(sid, s) not in have]
    return sorted(todo, key=lambda item: (item[1].datetime, item[0]))


def choose_reference(
    snapshot_id: str, snapshot: Snapshot, source: Mapping[str, Snapshot], copied: Mapping[str, str]
) -> str | None:
    """The source snapshot, already in the destination, most like ``snapshot``.

    ``copied`` maps source snapshot IDs to their copies' IDs in the destination.
    Preference: the recorded parent; else the newest copied snapshot of the same
    host and paths not newer than this one; else the newest of the same host and
    paths. None when there is nothing to compare against.
    """
    if snapshot.parent and snapshot.parent in copied:
        return snapshot.parent
    same = [
        (s.datetime, sid)
        for sid, s in source.items()
        if sid in copied and sid != snapshot_id
        and s.hostname == snapshot.hostname and sorted(s.paths) == sorted(snapshot.paths)
    ]  # fmt: skip
    if not same:
        return None
    older = [item for item in same if item[0] <= snapshot.datetime]
    return max(older or same)[1]


def copied_snapshot(snapshot_id: str, snapshot: Snapshot, tree: bytes, parent: str | None) -> Snapshot:
    """The destination's version: same record, destination tree, identity kept."""
    return msgspec.structs.replace(
        snapshot, tree=tree, parent=parent or "", original=identity(snapshot_id, snapshot)
    )


def copied_map(source: Mapping[str, Snapshot], destination: Mapping[str, Snapshot]) -> dict[str, str]:
    """Source snapshot ID -> ID of its copy in the destination, for those present in both."""
    have = identities(destination)
    return {sid: have[identity(sid, snap)] for sid, snap in source.items() if identity(sid, snap) in have}
