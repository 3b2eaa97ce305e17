"""Suspicious snapshots (ransomware check): list them, and acknowledge one to lift its hold.

The acknowledgement lives in the repository, so every host sees it: the
snapshot is rewritten with the tag ``anomaly-acked`` added (the same tree and
fields; ``original`` names the first version), then the old file is removed.
Written before removed, so a crash leaves both and the hold stays in force.
The audit log records the operation (``anomaly ack``) like every command.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from amber.engine.retention_hold import ACKED_TAG, SUSPICIOUS_TAG
from amber.errors import UsageError
from amber.repository import Repository, Snapshot
from amber.services.forget import refuse_if_append_only
from amber.services.snapshots import SnapshotFilter, select


@dataclass
class Acknowledged:
    old_id: str
    new_id: str
    snapshot: Snapshot


def suspicious(repo: Repository, include_acked: bool = True) -> list[tuple[str, Snapshot]]:
    """Snapshots tagged suspicious, oldest first."""
    found = select(repo, SnapshotFilter(tags=[SUSPICIOUS_TAG]))
    return [(sid, s) for sid, s in found if include_acked or ACKED_TAG not in s.tags]


def acknowledge(repo: Repository, ref: str) -> Acknowledged:
    """Mark snapshot ``ref`` as reviewed: forget no longer holds the clean snapshots before it."""
    refuse_if_append_only(repo, "anomaly ack (it rewrites the snapshot)")
    sid = repo.resolve_snapshot_id(ref)
    with repo.lock(exclusive=False):
        snap = repo.load_snapshot(sid)
        if SUSPICIOUS_TAG not in snap.tags:
            raise UsageError(f"snapshot {sid[:8]} is not tagged {SUSPICIOUS_TAG}: nothing to acknowledge")
        if ACKED_TAG in snap.tags:
            return Acknowledged(sid, sid, snap)
        tags = sorted({*snap.tags, ACKED_TAG})
        acked = msgspec.structs.replace(snap, tags=tags, original=snap.original or sid)
        new_id = repo.save_snapshot(acked)
        repo.remove_snapshot(sid)
    return Acknowledged(sid, new_id, acked)
