"""What a path in the mounted view names: its attributes, and how to list, follow or read it."""

from __future__ import annotations

import stat
from collections.abc import Callable
from dataclasses import dataclass

from amber.repository import Node

_TYPE_BITS = {
    "dir": stat.S_IFDIR, "file": stat.S_IFREG, "symlink": stat.S_IFLNK,
    "fifo": stat.S_IFIFO, "chardev": stat.S_IFCHR, "blockdev": stat.S_IFBLK,
}  # fmt: skip


@dataclass(frozen=True)
class Attr:
    kind: str
    mode: int  # permission bits
    size: int
    mtime_ns: int
    atime_ns: int = 0
    ctime_ns: int = 0
    uid: int = 0
    gid: int = 0
    rdev: int = 0

    @property
    def st_mode(self) -> int:
        return _TYPE_BITS.get(self.kind, stat.S_IFREG) | (self.mode & 0o7777)


@dataclass(frozen=True)
class Entry:
    """What a path names: its attributes, and how to list, follow or read it."""

    attr: Attr
    children: Callable[[], list[bytes]] | None = None
    link: bytes | None = None
    node: Callable[[], Node] | None = None  # the tree node holding the data
