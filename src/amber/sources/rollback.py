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

The swap is all or none, like the ZFS and LVM ones: every step done is
recorded with its reverse (a rename back; the deletion of the writable snapshot
it made, checked to be that one; the empty placeholder of a nested subvolume
made again with its mode, owner and times). When a step fails, those done are
reversed, last first, and the error says the live state is unchanged. When a
reverse fails too, the steps of that top volume (and its nested ones) are left
as they are, the other volumes are still put back, and the error says where
each previous state now is. Nothing is ever renamed over an existing name, and
only a snapshot the swap made itself is deleted: never the only copy of a state.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from amber.errors import LocalSnapshotError, RollbackRefused
from amber.sources.btrfs import SUBVOLUME_INODE, BtrfsProvider, remove_empty_dir
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
    """Carry out ``plan``: old live state to its pre-rollback place, the target into the live place.

    All or none: on a failure every step done is reversed before the error is raised.
    """
    journal = _Journal()
    tops: list[str] = []
    for snap, pre, nested, is_writable in plan.moves:
        live = snap.volume.mountpoint
        journal.unit = next((t for t in tops if inside(live, t)), live) if nested else live
        if not nested:
            tops.append(live)
        try:
            _move(provider, journal, snap, pre, nested, is_writable)
        except BaseException as exc:  # an interrupt too: all or none
            now = journal.undo()
            if isinstance(exc, (OSError, LocalSnapshotError)):
                raise LocalSnapshotError(f"rollback of {live} failed: {_why(exc)}; {now}") from exc
            raise LocalSnapshotError(f"rollback of {live} interrupted ({type(exc).__name__}); {now}") from exc


def _move(
    provider: BtrfsProvider,
    journal: _Journal,
    snap: VolumeSnapshot,
    pre: str,
    nested: bool,
    is_writable: bool,
) -> None:
    live = snap.volume.mountpoint
    if nested:  # its old state moved away with the parent; the new parent has an empty placeholder
        placeholder = _remove_placeholder(live)
        if placeholder is not None:
            journal.done(placeholder)
    else:
        parent = os.path.dirname(pre)
        created = _missing(parent)
        journal.done(lambda: _remove_dirs(created))
        os.makedirs(parent, mode=0o700, exist_ok=True)
        _rename(live, pre)
        journal.done(lambda: _rename(pre, live), f"the previous state of {live} is at {pre}")
    if is_writable:
        _rename(snap.path, live)
        journal.done(lambda: _rename(live, snap.path), f"{live} holds what was at {snap.path}")
    else:
        _absent(live)  # else btrfs would make the snapshot inside what is there
        provider.snapshot_writable(snap.path, live)
        made = _device(live)
        copy = f"{live} is a writable snapshot of {snap.path}"
        journal.done(lambda: _delete_made(provider, live, made), copy)


@dataclass
class _Step:
    unit: str  # the top volume's live path: the steps of one unit depend on each other
    back: Callable[[], object]
    where: str  # while the step stands: where a state is ("" when it moves none)


@dataclass
class _Journal:
    """The steps done so far, each with its reverse."""

    unit: str = ""
    steps: list[_Step] = field(default_factory=list)

    def done(self, back: Callable[[], object], where: str = "") -> None:
        self.steps.append(_Step(self.unit, back, where))

    def undo(self) -> str:
        """Reverse the steps, last first (a unit whose reverse fails keeps the rest); say what now is."""
        failed = ""
        stuck: list[str] = []
        standing: list[_Step] = []
        for step in reversed(self.steps):
            if step.unit not in stuck:
                try:
                    step.back()
                    continue
                except (OSError, LocalSnapshotError) as exc:
                    failed = failed or _why(exc)
                    stuck.append(step.unit)
            standing.append(step)
        moved = dict.fromkeys(s.unit for s in self.steps if s.where)
        back = [u for u in moved if u not in stuck]
        if not failed:
            return "the live state is unchanged" + (f" ({', '.join(back)} put back)" if back else "")
        where = "; ".join(s.where for s in reversed(standing) if s.where)
        restored = f"; {', '.join(back)} put back as before" if back else ""
        return f"putting it back failed too ({failed}), so {where}{restored}"


def _why(exc: OSError | LocalSnapshotError) -> str:
    if isinstance(exc, LocalSnapshotError):
        return exc.message
    text = exc.strerror or str(exc)
    return f"{text} ({exc.filename})" if exc.filename else text


def _rename(source: str, target: str) -> None:
    """Rename, never over an existing name (a rename would replace an empty directory)."""
    _absent(target)
    os.rename(source, target)


def _absent(path: str) -> None:
    if os.path.lexists(path):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), path)


def _missing(path: str) -> list[str]:
    """``path`` and those of its parents that do not exist, outermost first."""
    missing: list[str] = []
    while path and not os.path.lexists(path):
        missing.insert(0, path)
        path = os.path.dirname(path)
    return missing


def _remove_dirs(created: list[str]) -> None:
    for path in reversed(created):
        remove_empty_dir(path)


def _remove_placeholder(live: str) -> Callable[[], None] | None:
    """Remove the empty directory a new parent tree has where a nested subvolume goes; its reverse."""
    try:
        before = os.lstat(live)
    except FileNotFoundError:
        return None
    if not stat.S_ISDIR(before.st_mode) or before.st_ino == SUBVOLUME_INODE or os.listdir(live):
        return None  # not a placeholder: putting the target there fails (a name in the way)
    os.rmdir(live)

    def again() -> None:
        os.mkdir(live, 0o700)
        os.chown(live, before.st_uid, before.st_gid)
        os.chmod(live, stat.S_IMODE(before.st_mode))
        os.utime(live, ns=(before.st_atime_ns, before.st_mtime_ns))

    return again


def _device(path: str) -> int:
    try:
        return os.lstat(path).st_dev
    except OSError:
        return -1


def _delete_made(provider: BtrfsProvider, live: str, device: int) -> None:
    """Delete the writable snapshot the swap made at ``live``, only if it is still that subvolume."""
    now = os.lstat(live)
    if now.st_dev != device or now.st_ino != SUBVOLUME_INODE:
        raise LocalSnapshotError(f"{live} is no longer the writable snapshot the rollback made")
    provider.delete_subvolume(live)
