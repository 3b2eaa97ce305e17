"""Btrfs rollback by swapping subvolumes.

The live subvolume is renamed to ``<snapshot_dir>/amber-<job>-pre-rollback-<stamp>/<quoted path>``
(kept until the next cleanup, so a rollback can be undone), then the target
takes its place: a writable snapshot of a read-only local snapshot, or the
subvolume itself when it is writable (an earlier pre-rollback state, a
freshly restored tree). Both steps are renames or snapshots inside one
filesystem: a service stopped around them sees one switch. Subvolumes nested
below the first are replaced in the new tree (their old state moves with the
parent into the pre-rollback subvolume). A subvolume that is itself mounted
(the root filesystem, ``subvol=@home``) cannot be renamed while in use: it
gets a plan (set-default, fstab, reboot) instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from amber.errors import LocalSnapshotError, RollbackRefused
from amber.sources.btrfs import BtrfsProvider
from amber.sources.model import VolumeSnapshot
from amber.sources.mounts import inside


@dataclass
class SwapPlan:
    steps: list[str] = field(default_factory=list)
    moves: list[tuple[VolumeSnapshot, str, bool, bool]] = field(
        default_factory=list
    )  # target, pre, nested, rw


def plan_swap(
    targets: Sequence[VolumeSnapshot],
    pre_dir: Callable[[VolumeSnapshot], str],
    mount_targets: set[str],
    writable: Callable[[VolumeSnapshot], bool],
) -> SwapPlan:
    plan = SwapPlan()
    done: list[str] = []
    for snap in sorted(targets, key=lambda s: s.volume.mountpoint):
        live = snap.volume.mountpoint
        if live == "/" or live in mount_targets:
            raise RollbackRefused(
                f"{live} is a mounted subvolume and cannot be swapped while in use; to roll it back: "
                f"btrfs subvolume snapshot {snap.path} <top>/@rollback && btrfs subvolume set-default "
                f"<id of @rollback> {snap.volume.top} (or point fstab's subvol= at it), then reboot"
            )
        nested = any(inside(live, d) for d in done)
        pre = os.path.join(pre_dir(snap), quote(live, safe=""))
        if not nested:
            plan.steps.append(f"move the live {live} to {pre}")
            done.append(live)
        is_writable = writable(snap)
        plan.steps.append(f"{'move' if is_writable else 'snapshot (writable)'} {snap.path} to {live}")
        plan.moves.append((snap, pre, nested, is_writable))
    return plan


def swap(provider: BtrfsProvider, plan: SwapPlan) -> None:
    """Carry out ``plan``: old live state to its pre-rollback place, the target into the live place."""
    for snap, pre, nested, is_writable in plan.moves:
        live = snap.volume.mountpoint
        try:
            if nested:
                if os.path.isdir(live) and not os.listdir(live):
                    os.rmdir(live)  # the placeholder a snapshot has for a nested subvolume
            else:
                os.makedirs(os.path.dirname(pre), mode=0o700, exist_ok=True)
                os.rename(live, pre)
            if is_writable:
                os.rename(snap.path, live)
            else:
                provider.snapshot_writable(snap.path, live)
        except OSError as exc:
            raise LocalSnapshotError(
                f"rollback of {live} failed: {exc.strerror}; its previous state is at {pre}"
            ) from exc
