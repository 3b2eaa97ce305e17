"""Btrfs subvolume snapshots, for real: ``btrfs subvolume show/list/snapshot -r/delete``.

The subvolume of a path is the highest directory above it on the same device
number (every subvolume has its own) whose inode is 256, confirmed by
``btrfs subvolume show``. A snapshot of the subvolume at ``/m/vol`` taken as
``amber-home-<stamp>`` lives at ``<snapshot_dir>/amber-home-<stamp>/%2Fm%2Fvol``:
one directory per run, one read-only subvolume per snapshotted subvolume, named
by its quoted mount point so listing needs no other record.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from urllib.parse import quote

from amber.errors import LocalSnapshotError
from amber.sources.model import Volume, VolumeSnapshot
from amber.sources.mounts import MountTable, mount_of, system_mounts
from amber.sources.naming import parse_name
from amber.sources.runner import CommandRunner, SystemRunner, checked

SUBVOLUME_INODE = 256


def part_name(volume: Volume) -> str:
    return quote(volume.mountpoint, safe="")


class BtrfsProvider:
    kind = "btrfs"

    def __init__(self, run: CommandRunner | None = None, mounts: MountTable = system_mounts) -> None:
        self.run = run or SystemRunner()
        self.mounts = mounts

    def volume_of(self, path: str) -> Volume | None:
        path = os.path.normpath(os.path.abspath(path))
        mount = mount_of(path, self.mounts())
        if mount.fstype != "btrfs":
            return None
        root = _subvolume_root(path, mount.target)
        checked(self.run, ["btrfs", "subvolume", "show", root])
        return Volume("btrfs", root, root, mount.target, mount.target)

    def volumes_below(self, volume: Volume, path: str, skip: Sequence[str] = ()) -> list[Volume]:
        """Subvolume roots below ``path``: directories with inode 256 on a new device number.

        A directory walk rather than ``btrfs subvolume list``, whose paths are
        relative to different roots depending on where it is asked.
        """
        table = self.mounts()
        mount = mount_of(volume.mountpoint, table)
        targets = {m.target for m in table}
        found, stack = [], [path]
        while stack:
            current = stack.pop()
            try:
                parent_dev = os.lstat(current).st_dev
                entries = list(os.scandir(current))
            except OSError:
                continue  # unreadable here: the backup reports it
            for entry in entries:
                if entry.path in skip or not entry.is_dir(follow_symlinks=False):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if st.st_dev != parent_dev:
                    if st.st_ino != SUBVOLUME_INODE or entry.path in targets:
                        continue  # another filesystem: the plan reports mounts
                    found.append(Volume("btrfs", entry.path, entry.path, mount.target, mount.target))
                stack.append(entry.path)
        return sorted(found, key=lambda v: v.mountpoint)

    def create(self, volume: Volume, name: str, snapshot_dir: str) -> VolumeSnapshot:
        run_dir = os.path.join(snapshot_dir, name)
        try:
            os.makedirs(run_dir, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise LocalSnapshotError(f"cannot create {run_dir}: {exc.strerror}") from exc
        target = os.path.join(run_dir, part_name(volume))
        checked(self.run, ["btrfs", "subvolume", "snapshot", "-r", volume.ident, target])
        parsed = parse_name(name)
        return VolumeSnapshot(name, volume, target, target, parsed.created if parsed else None)

    def list(self, volume: Volume, snapshot_dir: str) -> list[VolumeSnapshot]:
        try:
            names = sorted(os.listdir(snapshot_dir))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise LocalSnapshotError(f"cannot list {snapshot_dir}: {exc.strerror}") from exc
        found = []
        for name in names:
            parsed = parse_name(name)
            target = os.path.join(snapshot_dir, name, part_name(volume))
            if parsed is not None and os.path.isdir(target):
                found.append(VolumeSnapshot(name, volume, target, target, parsed.created))
        return sorted(found, key=lambda s: (s.created is None, s.created, s.name))

    def delete(self, snap: VolumeSnapshot) -> None:
        if os.path.isdir(snap.handle):
            checked(self.run, ["btrfs", "subvolume", "delete", snap.handle])
        remove_empty_dir(os.path.dirname(snap.handle))

    def writable(self, snap: VolumeSnapshot) -> bool:
        out = checked(self.run, ["btrfs", "property", "get", "-ts", snap.handle, "ro"])
        return out.strip() == "ro=false"

    def snapshot_writable(self, source: str, target: str) -> None:
        checked(self.run, ["btrfs", "subvolume", "snapshot", source, target])

    def create_subvolume(self, target: str) -> None:
        checked(self.run, ["btrfs", "subvolume", "create", target])


def remove_empty_dir(path: str) -> None:
    with contextlib.suppress(OSError):  # not empty (another part of the run) or already gone
        os.rmdir(path)


def _subvolume_root(path: str, mount_target: str) -> str:
    """The highest directory from ``path`` up to the mount that shares its device: the subvolume root."""
    try:
        dev = os.stat(path).st_dev
    except OSError as exc:
        raise LocalSnapshotError(f"cannot snapshot {path}: {exc.strerror}") from exc
    current = path if os.path.isdir(path) else os.path.dirname(path)
    while current != mount_target and current != "/":
        parent = os.path.dirname(current)
        try:
            if os.stat(parent).st_dev != dev:
                break
        except OSError:
            break
        current = parent
    if os.stat(current).st_ino != SUBVOLUME_INODE:
        raise LocalSnapshotError(
            f"{path}: cannot find its Btrfs subvolume (no inode {SUBVOLUME_INODE} above it)"
        )
    return current
