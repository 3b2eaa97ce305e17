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
from amber.sources.btrfs import remove_empty_dir
from amber.sources.model import Volume, VolumeSnapshot
from amber.sources.mounts import inside
from amber.sources.naming import parse_name
from amber.sources.runner import CommandRunner, SystemRunner, checked

_NOT_MOUNTED = ("none", "legacy", "-", "")


class ZfsProvider:
    kind = "zfs"

    def __init__(self, run: CommandRunner | None = None) -> None:
        self.run = run or SystemRunner()

    def _filesystems(self) -> list[tuple[str, str, str]]:
        """Every filesystem dataset: (name, mountpoint, canmount)."""
        out = checked(
            self.run, ["zfs", "list", "-H", "-p", "-t", "filesystem", "-o", "name,mountpoint,canmount"]
        )
        rows = [line.split("\t") for line in out.splitlines()]
        return [(r[0], r[1], r[2]) for r in rows if len(r) == 3]

    def _datasets(self) -> list[Volume]:
        return [
            Volume("zfs", name, mountpoint, name.split("/")[0], mountpoint)
            for name, mountpoint, canmount in self._filesystems()
            if mountpoint not in _NOT_MOUNTED and canmount != "off"
        ]

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
        """amber's snapshots of the dataset, then the datasets beside it named ``<dataset>.<amber name>``.

        Those are a rollback's pre-rollback states and a crashed ``--from-repo``'s
        fresh dataset: cleanup removes them like snapshots (``zfs destroy -r``).
        """
        found = [
            VolumeSnapshot(name, volume, _snap_path(volume, name), f"{volume.ident}@{name}", created, used)
            for name, created, used in self._snapshots(volume)
            if parse_name(name)
        ]
        for dataset, mountpoint, _ in self._filesystems():
            name = dataset[len(volume.ident) + 1 :]
            parsed = parse_name(name) if dataset.startswith(volume.ident + ".") else None
            if parsed is not None:
                path = "" if mountpoint in _NOT_MOUNTED else mountpoint
                found.append(VolumeSnapshot(name, volume, path, dataset, parsed.created))
        return found

    def delete(self, snap: VolumeSnapshot) -> None:
        if "@" in snap.handle:
            checked(self.run, ["zfs", "destroy", snap.handle])
            return
        checked(self.run, ["zfs", "destroy", "-r", snap.handle])  # a dataset beside the live one
        if snap.path:
            remove_empty_dir(snap.path)
            remove_empty_dir(os.path.dirname(snap.path))

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

    # -- rollback by renaming datasets (sources/zfs_swap.py plans the commands) -------------
    def destroy_dataset(self, dataset: str) -> None:
        checked(self.run, ["zfs", "destroy", "-r", dataset])

    def run_all(self, commands: Sequence[Sequence[str]]) -> None:
        for argv in commands:
            checked(self.run, argv)


def _snap_path(volume: Volume, name: str) -> str:
    return os.path.join(volume.mountpoint, ".zfs", "snapshot", name)
