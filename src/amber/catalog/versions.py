"""What a file *version* is, and the lineages snapshots belong to. Pure, no I/O.

A version is a path whose content and metadata stay the same from one snapshot to the
next. Directories are versioned on their own metadata only: a change inside a
directory is a new version of that file, not of every directory above it.
"""

from __future__ import annotations

import datetime as dt
import json
import os

from amber.repository import Node, Snapshot

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_OFFSET = 10**18  # keeps times before 1970 sorting correctly as fixed-width text
KIND_LETTER = {"file": "f", "dir": "d", "symlink": "l", "fifo": "p", "chardev": "c", "blockdev": "b"}


def same_version(a: Node, b: Node) -> bool:
    if a.type != b.type or a.mode != b.mode or a.mtime_ns != b.mtime_ns:
        return False
    if a.uid != b.uid or a.gid != b.gid or a.xattrs != b.xattrs:
        return False
    if a.type == "dir":
        return True
    return (
        a.size == b.size and a.content == b.content and a.sha256 == b.sha256
        and a.link_target == b.link_target and a.rdev == b.rdev
    )  # fmt: skip


def lineage_key(snap: Snapshot) -> tuple[str, str]:
    """Snapshots of one host and one set of paths form a lineage, as restic picks parents."""
    return snap.hostname, json.dumps(sorted(snap.paths))


def order_key(snapshot_id: str, snap: Snapshot) -> tuple[str, str]:
    """Order inside a lineage: by time, then ID (stable for equal times).

    Times are compared as UTC instants in microseconds, written with a fixed width.
    """
    delta = snap.datetime - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return f"{micros + _OFFSET:020d}", snapshot_id


def name_text(raw: bytes) -> tuple[str, bool]:
    """Searchable text of a raw name, and whether the text is exactly the name."""
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace"), False


def extension(raw: bytes) -> str:
    """Lower-case extension without the dot ('' for none and for dotfiles like .bashrc)."""
    stem, ext = os.path.splitext(raw)
    if not stem or not ext:
        return ""
    return ext[1:].decode("utf-8", "backslashreplace").lower()


def walk_order(path: bytes) -> list[bytes]:
    """Sort key giving the tree walk's order: parents first, names byte-sorted."""
    return path.split(b"/")
