"""The mount table (/proc/self/mountinfo): which mount holds a path, which lie below it. Pure parsing."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from amber.errors import LocalSnapshotError


@dataclass(frozen=True)
class Mount:
    target: str  # where it is mounted
    root: str  # the directory of the filesystem mounted there (Btrfs: the subvolume path)
    fstype: str
    source: str  # device, or pool/dataset for ZFS


MountTable = Callable[[], list[Mount]]


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[Mount]:
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 2:
            continue
        mounts.append(Mount(_unescape(fields[4]), _unescape(fields[3]), tail[0], _unescape(tail[1])))
    return mounts


def system_mounts() -> list[Mount]:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            return parse_mountinfo(f.read())
    except OSError as exc:
        raise LocalSnapshotError(f"cannot read the mount table: {exc.strerror}") from exc


def inside(path: str, root: str) -> bool:
    return root == "/" or path == root or path.startswith(root.rstrip("/") + "/")


def strictly_inside(path: str, root: str) -> bool:
    """``path`` lies below ``root`` and is not ``root`` itself."""
    return path != root and inside(path, root)


def mount_of(path: str, mounts: list[Mount]) -> Mount:
    """The mount that holds ``path`` (the last of the longest targets: later mounts hide earlier ones)."""
    path = os.path.normpath(path)
    best: Mount | None = None
    for m in mounts:
        if inside(path, m.target) and (best is None or len(m.target) >= len(best.target)):
            best = m
    if best is None:
        raise LocalSnapshotError(f"no mount holds {path}")
    return best


def mounts_below(path: str, mounts: list[Mount]) -> list[Mount]:
    """Mounts strictly below ``path``, each target once (the visible one), sorted."""
    path = os.path.normpath(path)
    found = {m.target: m for m in mounts if m.target != path and inside(m.target, path)}
    return [found[t] for t in sorted(found)]
