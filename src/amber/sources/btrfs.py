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
from amber.sources.mounts import MountTable, inside, mount_of, system_mounts
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
        """Subvolumes below ``path``, however deep: ``btrfs subvolume list -o`` from each one found.

        ``-o`` prints the direct children with paths relative to the filesystem's
        top level; the mount's root (``subvol=/@home``) is cut off to place them.
        """
        table = self.mounts()
        mount = mount_of(volume.mountpoint, table)
        prefix = mount.root.strip("/")
        found: list[Volume] = []
        pending = [volume.mountpoint]
        while pending:
            out = checked(self.run, ["btrfs", "subvolume", "list", "-o", pending.pop()])
            for line in out.splitlines():
                fs_path = line.partition(" path ")[2]
                if not fs_path or (prefix and not fs_path.startswith(prefix + "/")):
                    continue  # outside what this mount shows
                local = os.path.join(mount.target, fs_path[len(prefix) + 1 :] if prefix else fs_path)
                if any(inside(local, d) for d in skip) or not inside(local, path) or local == path:
                    continue
                found.append(Volume("btrfs", local, local, mount.target, mount.target))
                pending.append(local)
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
        """Delete the snapshot, nested subvolumes first (a pre-rollback state holds the old nested ones)."""
        if os.path.isdir(snap.handle):
            holder = Volume("btrfs", snap.handle, snap.handle, snap.volume.filesystem, snap.volume.top)
            for nested in reversed(self.volumes_below(holder, snap.handle)):
                checked(self.run, ["btrfs", "subvolume", "delete", nested.ident])
            checked(self.run, ["btrfs", "subvolume", "delete", snap.handle])
        remove_empty_dir(os.path.dirname(snap.handle))

    def writable(self, snap: VolumeSnapshot) -> bool:
        out = checked(self.run, ["btrfs", "property", "get", "-ts", snap.handle, "ro"])
        return out.strip() == "ro=false"

    def snapshot_writable(self, source: str, target: str) -> None:
        checked(self.run, ["btrfs", "subvolume", "snapshot", source, target])

    def create_subvolume(self, target: str) -> None:
        checked(self.run, ["btrfs", "subvolume", "create", target])

    def delete_subvolume(self, path: str) -> None:
        """Delete one subvolume; the kernel refuses one that still holds nested subvolumes."""
        checked(self.run, ["btrfs", "subvolume", "delete", path])


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
