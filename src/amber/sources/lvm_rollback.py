"""LVM rollback: ``lvconvert --merge`` of an amber snapshot back into its origin.

Never run on a real device-mapper here (these machines have none): tested
against a recorded command contract (tests/sources/test_lvm_rollback_contract.py).

The snapshot is unmounted, then the origin's filesystem, so that the origin
is not open and the merge starts at once (LVM lets the origin be used while
the merge copies chunks back in the background); then the origin is mounted
again. When something still holds the origin open (another mount, a bind
mount, a process), ``lvconvert`` answers "Delaying merge since origin is
open": the merge then happens at the origin's next activation, which the
result says. The merged snapshot is gone afterwards: unlike a Btrfs swap, an LVM
merge cannot be undone. A volume mounted at ``/`` cannot be unmounted:
it gets the plan (merge, reboot) instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from amber.errors import LocalSnapshotError, RollbackRefused
from amber.sources.lvm import LvmProvider
from amber.sources.model import VolumeSnapshot
from amber.sources.mounts import mount_of
from amber.sources.runner import checked

DEFERRED = "Delaying merge since origin is open"


@dataclass
class MergePlan:
    snap: VolumeSnapshot
    commands: list[list[str]] = field(default_factory=list)


def plan_merge(provider: LvmProvider, snap: VolumeSnapshot) -> MergePlan:
    live = snap.volume.mountpoint
    if live == "/":
        raise RollbackRefused(
            f"{live} cannot be unmounted while in use; to roll it back: lvconvert --merge {snap.handle}, "
            "then reboot (the merge starts when the origin is next activated)"
        )
    fstype = mount_of(live, provider.mounts()).fstype
    plan = MergePlan(snap)
    if snap.path:
        plan.commands.append(["umount", snap.path])
    plan.commands += [
        ["umount", live],
        ["lvconvert", "--merge", snap.handle],
        ["mount", "-t", fstype, f"/dev/{snap.volume.ident}", live],
    ]
    return plan


def merge(provider: LvmProvider, plan: MergePlan) -> list[str]:
    """Carry out ``plan``; notes for the user (a deferred merge). On failure the origin is mounted again."""
    notes: list[str] = []
    live = plan.snap.volume.mountpoint
    unmounted = False
    try:
        for argv in plan.commands:
            done = provider.run(argv)
            if done.returncode != 0:
                checked(lambda _argv, failed=done: failed, argv)  # raises LocalSnapshotError naming it
            if argv[:2] == ["umount", live]:
                unmounted = True
            elif argv[0] == "mount":
                unmounted = False
            if argv[0] == "lvconvert" and DEFERRED in done.stdout + done.stderr:
                notes.append(
                    f"{plan.snap.volume.ident} is still open: the merge happens at its next activation "
                    f"(lvchange --activate n then y {plan.snap.volume.ident}, or a reboot)"
                )
    except LocalSnapshotError:
        if unmounted:  # never leave the live filesystem unmounted
            mount = next(a for a in plan.commands if a[0] == "mount")
            provider.run(mount)
        raise
    return notes
