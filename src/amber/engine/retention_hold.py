"""The ransomware hold on retention: clean snapshots before a suspicious one stay. Pure, no I/O.

A snapshot tagged ``suspicious`` (the backup's anomaly check) and not yet
acknowledged (``anomaly-acked``, set by ``amber anomaly ack``) holds the
``clean`` newest snapshots of its group taken before it: no retention policy
and no ``forget ID`` removes them, so rotation never drops the last backups
taken before an infection.
"""

from __future__ import annotations

from collections.abc import Iterable

from amber.engine.retention import GroupResult, SnapshotRecord, group_key

SUSPICIOUS_TAG = "suspicious"
ACKED_TAG = "anomaly-acked"


def is_suspicious(snap: SnapshotRecord) -> bool:
    return SUSPICIOUS_TAG in snap.tags


def unacknowledged(snap: SnapshotRecord) -> bool:
    return SUSPICIOUS_TAG in snap.tags and ACKED_TAG not in snap.tags


def holds(snaps: Iterable[SnapshotRecord], clean: int) -> dict[str, str]:
    """Snapshot ID -> why it is held, over ``snaps`` (any order, grouped by host and paths)."""
    groups: dict[object, list[SnapshotRecord]] = {}
    for snap in snaps:
        groups.setdefault(group_key(snap, ("host", "paths")), []).append(snap)
    held: dict[str, str] = {}
    for members in groups.values():
        ordered = sorted(members, key=lambda s: (s.time.timestamp(), s.id))  # oldest first
        for i, snap in enumerate(ordered):
            if not unacknowledged(snap):
                continue
            before = [s for s in reversed(ordered[:i]) if not is_suspicious(s)][: max(clean, 0)]
            for kept in before:
                held.setdefault(kept.id, f"held: clean before suspicious {snap.id[:8]} (amber anomaly ack)")
    return held


def apply_holds(groups: list[GroupResult], held: dict[str, str]) -> None:
    """Move held snapshots from each group's ``remove`` to its ``keep``, with the hold as reason."""
    for g in groups:
        moved = [s for s in g.remove if s.id in held]
        if not moved:
            continue
        g.remove = [s for s in g.remove if s.id not in held]
        g.keep = sorted([*g.keep, *moved], key=lambda s: s.time.timestamp(), reverse=True)
        for s in moved:
            g.reasons[s.id] = [held[s.id]]
