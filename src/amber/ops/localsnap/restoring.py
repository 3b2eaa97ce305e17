"""A rollback's restore into a fresh volume: every file verified, then the whole tree compared."""

from __future__ import annotations

from collections.abc import Callable

from amber.errors import LocalSnapshotError
from amber.repository import Repository
from amber.services import restore as restore_service
from amber.sources.model import Volume
from amber.sources.restored import differences


def restore_verified(
    repo: Repository, snapshot_id: str, volume: Volume, target: str, note: Callable[[str], None]
) -> None:
    """Restore ``snapshot_id:<mount point>`` into ``target``; raise unless it holds exactly that tree."""
    note(f"restoring {snapshot_id[:8]}:{volume.mountpoint} into {target}")
    result = restore_service.restore(
        repo,
        restore_service.RestoreRequest(ref=f"{snapshot_id}:{volume.mountpoint}", target=target, verify=True),
    )
    restore_service.raise_if_damaged(result)
    problems = differences(repo, snapshot_id, volume.mountpoint, target)
    if problems:
        raise LocalSnapshotError(
            f"the restored {volume.mountpoint} differs from snapshot {snapshot_id[:8]} in {len(problems)} "
            f"place(s), first: {problems[0]}; the live volume was not touched"
        )
