"""LVM rollback from the repository: a fresh logical volume beside the origin, then ``lvrename``s.

Never run on a real device-mapper here (these machines have none): tested
against a recorded command contract (tests/ops/test_rollback_lvm_from_repo.py).

For the origin ``vg/lv`` mounted at ``M``: ``lvcreate`` an LV of the origin's
size named ``<name>.<lv>``, ``mkfs`` the origin's filesystem type (``blkid``)
with its UUID and label (fstab's ``UUID=``/``LABEL=`` entries then find the new
one), mount it on a private directory, restore and verify into it, unmount it.
Then, around the stop/start hooks: ``umount M``, ``lvrename`` the origin to
``<pre-rollback name>.<lv>`` and the fresh LV to ``lv``, and mount it at ``M``
with the options the origin had (``findmnt``). Each step of the swap has its
undo, run in reverse when a later one fails, so the origin is mounted again.
Several LVs swap all or none: when one fails, those done are taken back, last
step first, and every fresh LV is removed. Once all are in place, the
pre-rollback LVs are deactivated and marked to skip activation, so they are
neither mounted by their (shared) UUID at boot nor lost: the next cleanup
removes them. ext2/3/4 and XFS only; ``/`` gets the plan instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from amber.errors import LocalSnapshotError, RollbackRefused
from amber.sources.btrfs import remove_empty_dir
from amber.sources.lvm import LvmProvider
from amber.sources.model import Volume
from amber.sources.runner import Undoable, checked, run_undoable

FILESYSTEMS = ("ext2", "ext3", "ext4", "xfs")
NOT_REMOUNTABLE = ("seclabel",)  # shown by findmnt, refused by mount


@dataclass
class FreshLv:
    provider: LvmProvider
    volume: Volume
    fresh: str  # vg/<name>.<lv>
    pre: str  # vg/<pre-rollback name>.<lv>
    mountpoint: str  # where the fresh LV is mounted for the restore
    build: list[list[str]] = field(default_factory=list)
    unmount: list[str] = field(default_factory=list)
    swap: list[Undoable] = field(default_factory=list)
    after: list[list[str]] = field(default_factory=list)
    removable: bool = True  # the swapped-in LV was made by this rollback (not a kept state put back)


def parse_blkid(text: str) -> dict[str, str]:
    """``blkid -o export DEV``: KEY=value lines."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def remount_options(text: str) -> str:
    """``findmnt -n -r -o OPTIONS`` output without what mount refuses (and ``ro``/``rw`` kept)."""
    return ",".join(o for o in text.strip().split(",") if o and o not in NOT_REMOUNTABLE)


def plan_fresh_lv(
    provider: LvmProvider, volume: Volume, nested: list[str], name: str, pre_name: str, directory: str
) -> FreshLv:
    """The origin's size, filesystem and mount options read; what cannot be done refused before any change."""
    vg, lv = volume.ident.split("/", 1)
    live = volume.mountpoint
    fresh, pre = f"{name}.{lv}", f"{pre_name}.{lv}"
    if nested:
        raise RollbackRefused(
            f"{nested[0]} is another logical volume mounted inside {live}: a rollback from the repository "
            "replaces one volume at a time; restore the files with amber restore instead"
        )
    size = provider.size_of(volume)
    facts = parse_blkid(checked(provider.run, ["blkid", "-o", "export", f"/dev/{vg}/{lv}"]))
    fstype, uuid, label = facts.get("TYPE", ""), facts.get("UUID", ""), facts.get("LABEL", "")
    if fstype not in FILESYSTEMS:
        raise RollbackRefused(
            f"{volume.ident} holds {fstype or 'an unknown filesystem'}: a rollback from the repository makes "
            f"only {', '.join(FILESYSTEMS)}; restore the files with amber restore instead"
        )
    options = remount_options(
        checked(provider.run, ["findmnt", "-n", "-r", "-o", "OPTIONS", "--mountpoint", live])
    )
    target = os.path.join(directory, name, quote(live, safe=""))
    device, fresh_device = f"/dev/{vg}/{lv}", f"/dev/{vg}/{fresh}"
    plan = FreshLv(provider, volume, f"{vg}/{fresh}", f"{vg}/{pre}", target)
    plan.build = [
        ["lvcreate", "--yes", "--name", fresh, "--size", f"{size}b", vg],
        _mkfs(fstype, uuid, label, fresh_device),
        ["mount", "-t", fstype, *(["-o", "nouuid"] if fstype == "xfs" else []), fresh_device, target],
    ]
    plan.unmount = ["umount", target]
    mount_live = ["mount", "-t", fstype, *(["-o", options] if options else []), device, live]
    if live == "/":
        steps = [" ".join(a) for a in plan.build] + ["restore and verify into it", " ".join(plan.unmount)]
        raise RollbackRefused(
            "/ cannot be unmounted while in use; to roll it back from the repository: "
            + "; ".join(steps)
            + f"; then from a rescue system: lvrename {vg} {lv} {pre}; lvrename {vg} {fresh} {lv}; reboot"
        )
    plan.swap = [
        (["umount", live], mount_live),
        (["lvrename", vg, lv, pre], ["lvrename", vg, pre, lv]),
        (["lvrename", vg, fresh, lv], ["lvrename", vg, lv, fresh]),
        (mount_live, ["umount", live]),
    ]
    plan.after = [
        ["lvchange", "--setactivationskip", "y", plan.pre],
        ["lvchange", "--activate", "n", plan.pre],
    ]
    return plan


def plan_undo(provider: LvmProvider, volume: Volume, kept: str, pre_name: str) -> FreshLv:
    """Undo of a rollback from the repository: the kept LV ``kept`` (vg/<pre-rollback name>.<lv>) put back.

    The live LV is set aside as ``<pre_name>.<lv>`` the same way, so the undo can be undone.
    """
    vg, lv = volume.ident.split("/", 1)
    live = volume.mountpoint
    if live == "/":
        raise RollbackRefused(
            f"/ cannot be unmounted while in use; to go back to {kept}, from a rescue system: "
            f"lvrename {vg} {lv} {pre_name}.{lv}; lvrename {kept} {lv}; lvchange --setactivationskip n "
            f"{vg}/{lv}; reboot"
        )
    fstype = parse_blkid(checked(provider.run, ["blkid", "-o", "export", f"/dev/{vg}/{lv}"])).get("TYPE", "")
    options = remount_options(
        checked(provider.run, ["findmnt", "-n", "-r", "-o", "OPTIONS", "--mountpoint", live])
    )
    mount_live = ["mount", *(["-t", fstype] if fstype else []), *(["-o", options] if options else []),
                  f"/dev/{vg}/{lv}", live]  # fmt: skip
    kept_lv, aside = kept.split("/", 1)[1], f"{pre_name}.{lv}"
    plan = FreshLv(provider, volume, kept, f"{vg}/{aside}", "", removable=False)
    plan.swap = [
        (["lvchange", "--setactivationskip", "n", kept], ["lvchange", "--setactivationskip", "y", kept]),
        (["lvchange", "--activate", "y", kept], ["lvchange", "--activate", "n", kept]),
        (["umount", live], mount_live),
        (["lvrename", vg, lv, aside], ["lvrename", vg, aside, lv]),
        (["lvrename", vg, kept_lv, lv], ["lvrename", vg, lv, kept_lv]),
        (mount_live, ["umount", live]),
    ]
    plan.after = [
        ["lvchange", "--setactivationskip", "y", plan.pre],
        ["lvchange", "--activate", "n", plan.pre],
    ]
    return plan


def _mkfs(fstype: str, uuid: str, label: str, device: str) -> list[str]:
    same = (["-m", f"uuid={uuid}"] if fstype == "xfs" else ["-U", uuid]) if uuid else []
    return ["mkfs", "-t", fstype, "-q", *same, *(["-L", label] if label else []), device]


def build(plan: FreshLv, note: Callable[[str], None]) -> None:
    """Create, format and mount the fresh LV; on failure whatever was made is removed again."""
    made = mounted = False
    try:
        for argv in plan.build:
            if argv[0] == "mount":
                os.makedirs(plan.mountpoint, mode=0o700, exist_ok=True)
            checked(plan.provider.run, argv)
            made, mounted = True, argv[0] == "mount"
    except BaseException:
        if made:
            discard(plan, mounted, note)
        raise


def discard(plan: FreshLv, mounted: bool, note: Callable[[str], None]) -> None:
    """Unmount and remove the fresh LV (best effort: what fails is left for the next cleanup)."""
    try:
        if mounted:
            checked(plan.provider.run, plan.unmount)
        _remove_dirs(plan)
        checked(plan.provider.run, ["lvremove", "--yes", plan.fresh])
    except LocalSnapshotError as exc:
        note(f"{exc.message} (the next cleanup removes {plan.fresh})")


def unmount(plan: FreshLv) -> None:
    checked(plan.provider.run, plan.unmount)
    _remove_dirs(plan)


def _remove_dirs(plan: FreshLv) -> None:
    remove_empty_dir(plan.mountpoint)
    remove_empty_dir(os.path.dirname(plan.mountpoint))


def swap(plan: FreshLv, note: Callable[[str], None]) -> None:
    """The fresh LV takes the origin's name and mount; on failure the done steps are undone in reverse."""
    swap_in(plan, note)
    set_aside(plan, note)


def swap_all(plans: Sequence[FreshLv], note: Callable[[str], None]) -> None:
    """Swap every plan in, or none: when one fails, those done are taken back, last first, and removed."""
    done: list[FreshLv] = []
    for plan in plans:
        try:
            swap_in(plan, note)
        except LocalSnapshotError as exc:
            for back in reversed(done):
                failed, _ = run_undoable(back.provider.run, [(b, None) for _, b in reversed(back.swap) if b])
                if failed:
                    why = f"{exc.message}; putting {back.volume.mountpoint} back failed too ({failed})"
                    raise LocalSnapshotError(why) from exc
                discard(back, False, note)
            for later in plans[plans.index(plan) + 1 :]:
                discard(later, False, note)
            undone = ", ".join(p.volume.mountpoint for p in done)
            undone = f"; {undone} put back as before" if undone else ""
            raise LocalSnapshotError(exc.message + undone) from exc
        done.append(plan)
    for plan in plans:
        set_aside(plan, note)


def swap_in(plan: FreshLv, note: Callable[[str], None]) -> None:
    """The renames and mounts of ``plan.swap``; on failure the done ones are undone in reverse."""
    failed, stuck = run_undoable(plan.provider.run, plan.swap)
    if stuck:
        raise LocalSnapshotError(
            f"{failed}; undoing it failed too ({stuck}): {plan.volume.mountpoint} may be unmounted and its "
            f"old LV named {plan.pre}"
        )
    if failed:
        if plan.removable:
            discard(plan, False, note)
        raise LocalSnapshotError(f"{failed}; {plan.volume.mountpoint} was not changed")


def set_aside(plan: FreshLv, note: Callable[[str], None]) -> None:
    """The replaced LV deactivated and skipped at activation (the rollback is done: failures are reported)."""
    for argv in plan.after:
        if plan.provider.run(argv).returncode != 0:
            note(f"{' '.join(argv)} failed: {plan.pre} stays active (it has the same filesystem UUID)")
