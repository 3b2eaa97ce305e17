"""Where the archiver reads what it records: the live filesystem, or a mapped copy of it.

The archiver walks *recorded* paths, the ones the snapshot stores: excludes,
the parent snapshot and the files cache (the parent's nodes) all use them. A
source says where each recorded path is *read*. The live filesystem reads
every path in place. A :class:`MappedSource` reads a recorded root from
another directory: a Btrfs, ZFS or LVM snapshot mounted at
``/mnt/.amber-snapshots/x`` records ``/home/me/...`` while it reads
``/mnt/.amber-snapshots/x/home/me/...``. Paths outside every mapped root
(the ancestors of a backup path, say) are read in place.

A source also says whether lstat's identity fields can be compared with the
parent snapshot's: ``stable_ids``. On the live filesystem an unchanged file
keeps its inode, device and ctime, so the archiver reuses its node when they
match (see metadata.py). A copy or a dump has new inodes and ctimes, and a
mounted filesystem snapshot a new device number on every mount. With
``stable_ids=False`` (like restic's ``--ignore-inode``), a file counts as
unchanged when its type, size and mtime match and its blobs are stored; its
node is built from lstat again, and keeps the parent's inode, device, ctime
and atime when everything else is the same (metadata.keep_identity), so an
unchanged tree keeps its tree ID whatever the read path.
"""

from __future__ import annotations

import os
from typing import Protocol

from amber.engine.walkrule import Mounts, mounts_of, read_path
from amber.errors import UsageError


class Source(Protocol):
    @property
    def mounts(self) -> Mounts:
        """(recorded root, read root) pairs, longest first; empty when everything is read in place."""
        ...

    @property
    def stable_ids(self) -> bool:
        """Inode, device and ctime match the parent snapshot's for an unchanged file."""
        ...

    def read_path(self, path: bytes) -> bytes:
        """Where the recorded absolute ``path`` is read."""
        ...


class LiveSource:
    """The live filesystem: every path is read where it is recorded."""

    mounts: Mounts = ()
    stable_ids = True

    def read_path(self, path: bytes) -> bytes:
        return path


class MappedSource:
    """Reads ``recorded_root`` (and everything below it) from ``read_root``.

    ``more`` adds further (read root, recorded root) pairs, for a snapshot of
    several filesystems; the longest recorded root that contains a path wins.
    """

    def __init__(
        self,
        read_root: bytes | str,
        recorded_root: bytes | str,
        *more: tuple[bytes | str, bytes | str],
        stable_ids: bool = False,
    ) -> None:
        pairs = [(os.fsencode(rec), os.fsencode(read)) for read, rec in [(read_root, recorded_root), *more]]
        if any(not rec.startswith(b"/") or not read.startswith(b"/") for rec, read in pairs):
            raise UsageError("the roots of a mapped source must be absolute paths")
        self.mounts = mounts_of(pairs)
        self.stable_ids = stable_ids

    def read_path(self, path: bytes) -> bytes:
        return read_path(self.mounts, path)
