"""LVM logical-volume snapshots: ``lvs``, ``lvcreate --snapshot``, ``mount -o ro``, ``umount``, ``lvremove``.

Never run on a real kernel here (no device-mapper on these machines): tested
against a recorded command contract (tests/sources/test_lvm_contract.py).
The snapshot LV of ``vg/lv`` for run ``amber-home-<stamp>`` is
``vg/amber-home-<stamp>.lv`` (10% of the origin's extents for copy-on-write),
mounted read-only at ``<snapshot_dir>/amber-home-<stamp>/<quoted mount point>``.
ext2/3/4 mount with ``noload`` and XFS with ``nouuid,norecovery``: the
snapshot of a mounted filesystem has an unreplayed journal and a duplicate UUID.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Sequence
from urllib.parse import quote

from amber.errors import LocalSnapshotError
from amber.sources.btrfs import remove_empty_dir
from amber.sources.model import Volume, VolumeSnapshot
from amber.sources.mounts import Mount, MountTable, inside, mount_of, mounts_below, system_mounts
from amber.sources.naming import parse_name
from amber.sources.runner import CommandRunner, SystemRunner, checked

_LVS = [
    "lvs",
    "--noheadings",
    "--nosuffix",
    "--units",
    "b",
    "--separator",
    "|",
    "-o",
    "vg_name,lv_name,lv_path,lv_dm_path,origin,lv_time,lv_size",
]
_OPTIONS = {"ext2": "ro,noload", "ext3": "ro,noload", "ext4": "ro,noload", "xfs": "ro,nouuid,norecovery"}


class LvmProvider:
    kind = "lvm"

    def __init__(self, run: CommandRunner | None = None, mounts: MountTable = system_mounts) -> None:
        self.run = run or SystemRunner()
        self.mounts = mounts

    def _lvs(self) -> list[list[str]]:
        return [
            [f.strip() for f in line.split("|")]
            for line in checked(self.run, _LVS).splitlines()
            if line.count("|") == 6
        ]

    def _volume(self, mount: Mount, rows: list[list[str]]) -> Volume | None:
        for vg, lv, lv_path, dm_path, origin, _, _ in rows:
            if mount.source in (lv_path, dm_path) and not origin:
                return Volume("lvm", f"{vg}/{lv}", mount.target, vg, mount.target)
        return None

    def volume_of(self, path: str) -> Volume | None:
        mount = mount_of(os.path.abspath(path), self.mounts())
        if not mount.source.startswith("/dev/"):
            return None
        return self._volume(mount, self._lvs())

    def volumes_below(self, volume: Volume, path: str, skip: Sequence[str] = ()) -> list[Volume]:
        below = [m for m in mounts_below(path, self.mounts()) if not any(inside(m.target, d) for d in skip)]
        if not below:
            return []
        rows = self._lvs()
        return [v for v in (self._volume(m, rows) for m in below) if v is not None]

    def create(self, volume: Volume, name: str, snapshot_dir: str) -> VolumeSnapshot:
        vg, lv = volume.ident.split("/", 1)
        snap_lv = f"{name}.{lv}"
        checked(
            self.run,
            [
                "lvcreate",
                "--snapshot",
                "--permission",
                "r",
                "--extents",
                "10%ORIGIN",
                "--name",
                snap_lv,
                volume.ident,
            ],
        )
        parsed = parse_name(name)
        snap = VolumeSnapshot(name, volume, "", f"{vg}/{snap_lv}", parsed.created if parsed else None)
        return self.mount_snapshot(snap, snapshot_dir)

    def mount_snapshot(self, snap: VolumeSnapshot, snapshot_dir: str) -> VolumeSnapshot:
        """Mount the snapshot LV read-only at ``<snapshot_dir>/<name>/<quoted mount point>``; return it so.

        A run mounts its snapshot there; a rollback mounts a kept one that is not
        mounted (after a reboot) to count what the merge changes.
        """
        target = os.path.join(snapshot_dir, snap.name, quote(snap.volume.mountpoint, safe=""))
        try:
            os.makedirs(target, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise LocalSnapshotError(f"cannot create {target}: {exc.strerror}") from exc
        fstype = mount_of(snap.volume.mountpoint, self.mounts()).fstype
        try:
            checked(self.run, ["mount", "-o", _OPTIONS.get(fstype, "ro"), f"/dev/{snap.handle}", target])
        except LocalSnapshotError:
            remove_empty_dir(target)
            remove_empty_dir(os.path.dirname(target))
            raise
        return dataclasses.replace(snap, path=target)

    def size_of(self, volume: Volume) -> int:
        """The logical volume's size in bytes."""
        for vg, lv, _, _, _, _, size in self._lvs():
            if f"{vg}/{lv}" == volume.ident and size.isdigit():
                return int(size)
        raise LocalSnapshotError(f"lvs does not report the size of {volume.ident}")

    def list(self, volume: Volume, snapshot_dir: str) -> list[VolumeSnapshot]:
        """amber's snapshot LVs of the origin, and the LVs beside it named ``<amber name>.<lv>``.

        Those are a ``--from-repo`` rollback's pre-rollback state and a crashed
        one's fresh LV: cleanup removes them like snapshots.
        """
        vg, lv = volume.ident.split("/", 1)
        mounted = {m.target for m in self.mounts()}
        found = []
        for row_vg, snap_lv, _, _, origin, created, size in self._lvs():
            name = snap_lv[: -len(lv) - 1] if snap_lv.endswith("." + lv) else ""
            if row_vg != vg or origin not in (lv, "") or parse_name(name) is None:
                continue
            target = os.path.join(snapshot_dir, name, quote(volume.mountpoint, safe=""))
            found.append(
                VolumeSnapshot(
                    name,
                    volume,
                    target if target in mounted else "",
                    f"{vg}/{snap_lv}",
                    _lvs_time(created),
                    int(size) if size.isdigit() else None,
                )
            )
        return sorted(found, key=lambda s: s.name)

    def delete(self, snap: VolumeSnapshot) -> None:
        if snap.path:
            checked(self.run, ["umount", snap.path])
            remove_empty_dir(snap.path)
            remove_empty_dir(os.path.dirname(snap.path))
        checked(self.run, ["lvremove", "--yes", snap.handle])


def _lvs_time(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S %z").astimezone(dt.UTC)
    except ValueError:
        return None
