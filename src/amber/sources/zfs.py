"""ZFS dataset snapshots: ``zfs list / snapshot / destroy / rollback``.

Never run on a real kernel here (no ZFS module on these machines): tested
against a recorded command contract (tests/sources/test_zfs_contract.py).
A snapshot needs no mount: ZFS shows it at ``<mountpoint>/.zfs/snapshot/<name>``,
so ``snapshot_dir`` is not used.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence

from amber.errors import RollbackRefused
from amber.sources.model import Volume, VolumeSnapshot
from amber.sources.mounts import inside
from amber.sources.naming import parse_name
from amber.sources.runner import CommandRunner, SystemRunner, checked

_NOT_MOUNTED = ("none", "legacy", "-", "")


class ZfsProvider:
    kind = "zfs"

    def __init__(self, run: CommandRunner | None = None) -> None:
        self.run = run or SystemRunner()

    def _datasets(self) -> list[Volume]:
        out = checked(
            self.run, ["zfs", "list", "-H", "-p", "-t", "filesystem", "-o", "name,mountpoint,canmount"]
        )
        found = []
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) != 3 or parts[1] in _NOT_MOUNTED or parts[2] == "off":
                continue
            name, mountpoint = parts[0], parts[1]
            found.append(Volume("zfs", name, mountpoint, name.split("/")[0], mountpoint))
        return found

    def volume_of(self, path: str) -> Volume | None:
        path = os.path.normpath(os.path.abspath(path))
        holders = [v for v in self._datasets() if inside(path, v.mountpoint)]
        return max(holders, key=lambda v: len(v.mountpoint)) if holders else None

    def volumes_below(self, volume: Volume, path: str, skip: Sequence[str] = ()) -> list[Volume]:
        return sorted(
            (v for v in self._datasets() if v.mountpoint != path and inside(v.mountpoint, path)),
            key=lambda v: v.mountpoint,
        )

    def create(self, volume: Volume, name: str, snapshot_dir: str) -> VolumeSnapshot:
        checked(self.run, ["zfs", "snapshot", f"{volume.ident}@{name}"])
        parsed = parse_name(name)
        return VolumeSnapshot(
            name,
            volume,
            _snap_path(volume, name),
            f"{volume.ident}@{name}",
            parsed.created if parsed else None,
        )

    def _snapshots(self, volume: Volume) -> list[tuple[str, dt.datetime, int | None]]:
        """Every snapshot of the dataset (amber's or not), oldest first: (name, creation, used)."""
        out = checked(
            self.run,
            [
                "zfs",
                "list",
                "-H",
                "-p",
                "-t",
                "snapshot",
                "-d",
                "1",
                "-s",
                "creation",
                "-o",
                "name,creation,used",
                volume.ident,
            ],
        )
        found = []
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) != 3 or "@" not in parts[0]:
                continue
            created = dt.datetime.fromtimestamp(int(parts[1]), dt.UTC)
            found.append((parts[0].split("@", 1)[1], created, int(parts[2]) if parts[2].isdigit() else None))
        return found

    def list(self, volume: Volume, snapshot_dir: str) -> list[VolumeSnapshot]:
        return [
            VolumeSnapshot(name, volume, _snap_path(volume, name), f"{volume.ident}@{name}", created, used)
            for name, created, used in self._snapshots(volume)
            if parse_name(name)
        ]

    def delete(self, snap: VolumeSnapshot) -> None:
        checked(self.run, ["zfs", "destroy", snap.handle])

    def newer_than(self, snap: VolumeSnapshot) -> Sequence[str]:
        """Snapshots of the dataset taken after ``snap`` (anyone's): what ``zfs rollback -r`` destroys."""
        names = [name for name, _, _ in self._snapshots(snap.volume)]
        return names[names.index(snap.name) + 1 :] if snap.name in names else []

    def rollback(self, snap: VolumeSnapshot, destroy_newer: bool) -> None:
        newer = self.newer_than(snap)
        if newer and not destroy_newer:
            raise RollbackRefused(
                f"rolling {snap.volume.ident} back to {snap.name} would destroy "
                f"{len(newer)} newer snapshot(s) ({', '.join(list(newer)[:3])}); "
                "give --destroy-newer to allow it"
            )
        checked(self.run, ["zfs", "rollback", *(["-r"] if newer else []), snap.handle])

    # -- rollback from the repository: a fresh dataset beside the live one, then renames --------
    def create_dataset(self, dataset: str, mountpoint: str) -> None:
        checked(self.run, ["zfs", "create", "-o", f"mountpoint={mountpoint}", dataset])

    def destroy_dataset(self, dataset: str) -> None:
        checked(self.run, ["zfs", "destroy", "-r", dataset])

    def mountpoint_is_local(self, dataset: str) -> bool:
        """The dataset's mountpoint is set on it (not inherited from its parent or the default)."""
        out = checked(self.run, ["zfs", "get", "-H", "-o", "source", "mountpoint", dataset])
        return out.strip() == "local"

    def swap_commands(
        self, live: Volume, fresh: str, pre: str, pre_mountpoint: str
    ) -> Sequence[Sequence[str]]:
        """The live dataset renamed to ``pre``, mounted at ``pre_mountpoint``; ``fresh`` takes its place.

        Child datasets and snapshots move with the live dataset to ``pre``.
        """
        back = (
            ["zfs", "set", f"mountpoint={live.mountpoint}", live.ident]
            if self.mountpoint_is_local(live.ident)
            else ["zfs", "inherit", "mountpoint", live.ident]
        )
        return [
            ["zfs", "rename", live.ident, pre],
            ["zfs", "set", f"mountpoint={pre_mountpoint}", pre],
            ["zfs", "rename", fresh, live.ident],
            back,
        ]

    def swap(self, commands: Sequence[Sequence[str]]) -> None:
        for argv in commands:
            checked(self.run, argv)


def _snap_path(volume: Volume, name: str) -> str:
    return os.path.join(volume.mountpoint, ".zfs", "snapshot", name)
