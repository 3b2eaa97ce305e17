"""The one narrow interface every filesystem-snapshot provider (Btrfs, ZFS, LVM) implements.

A *volume* is the unit a provider snapshots: a Btrfs subvolume, a ZFS
dataset, an LVM logical volume. Its ``mountpoint`` is where its content is
seen on the live system: the recorded root of a backup read from its snapshot.
A *volume snapshot* is one read-only snapshot of one volume, readable at
``path`` (the read root).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Volume:
    kind: str  # "btrfs" | "zfs" | "lvm"
    ident: str  # subvolume path / dataset name / "vg/lv"
    mountpoint: str  # where its content is on the live system
    filesystem: str  # the filesystem holding it: mount point of the Btrfs filesystem, pool, VG
    top: str  # the top of the mounted filesystem (default home of .amber-snapshots)


@dataclass(frozen=True)
class VolumeSnapshot:
    name: str  # amber-<job>-<stamp>
    volume: Volume
    path: str  # where the snapshot's content is readable ("" when not mounted)
    handle: str  # what delete/rollback address: snapshot path, dataset@name, vg/lv
    created: dt.datetime | None = None
    size: int | None = None  # bytes exclusively held, when the tool reports it


class SnapshotProvider(Protocol):
    kind: str

    def volume_of(self, path: str) -> Volume | None:
        """The volume of this kind that holds ``path``; None when ``path`` is on another kind."""
        ...

    def volumes_below(self, volume: Volume, path: str, skip: Sequence[str] = ()) -> list[Volume]:
        """Volumes of this kind nested below ``path``, left out of its snapshot (``skip``: not searched)."""
        ...

    def create(self, volume: Volume, name: str, snapshot_dir: str) -> VolumeSnapshot:
        """Take a read-only snapshot ``name`` of ``volume`` and make it readable."""
        ...

    def list(self, volume: Volume, snapshot_dir: str) -> list[VolumeSnapshot]:
        """amber's snapshots (names starting with ``amber-``) of ``volume``, oldest first."""
        ...

    def delete(self, snap: VolumeSnapshot) -> None:
        """Unmount and remove ``snap``."""
        ...
