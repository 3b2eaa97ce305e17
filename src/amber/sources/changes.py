"""What a rollback changes: entries added, removed and modified from the live tree to the one replacing it.

Counted before the swap, from two trees readable at that moment: the live
mount point of each volume, and its replacement (a local snapshot, a
restored fresh volume) or the repository snapshot's tree. An entry is
compared like ``amber diff`` would: its type, permission bits, a file's size
and, for a file with data, its mtime, a symlink's target. A directory that
cannot be read makes the count unknown, never wrong and never an error: the
rollback goes on and says why nothing was counted.

On the live side another filesystem mounted inside (which the rollback does
not replace) is counted as a directory but not entered. A directory on
another device that is no mount point is entered: a Btrfs subvolume created
below the live one after the snapshot (its own ``st_dev``, not a job volume)
moves aside with the live subvolume, so all it holds is removed. Whether a
directory is a mount point comes from the mount table, read once per count
(``os.path.ismount`` compares ``st_dev`` and calls every subvolume one).
Paths a rollback does not replace are skipped on both sides: amber's snapshot
directory, ZFS's ``.zfs``, and (when each volume is counted against its own
snapshot) the mount points of the volumes below it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from amber.engine.metadata import node_type
from amber.errors import LocalSnapshotError
from amber.sources.mounts import strictly_inside, system_mounts

Entry = tuple[str, int, int, int, bytes]  # type, permission bits, size, mtime (files with data), link target
Entries = dict[bytes, Entry]


@dataclass
class Changes:
    added: int = 0
    removed: int = 0
    modified: int = 0

    def __add__(self, other: Changes) -> Changes:
        return Changes(self.added + other.added, self.removed + other.removed, self.modified + other.modified)


@dataclass(frozen=True)
class Tree:
    root: str
    skip: frozenset[bytes] = frozenset()  # paths relative to root, neither counted nor entered
    devices: frozenset[int] | None = None  # None: every directory is entered
    mounts: frozenset[bytes] | None = None  # mount points below root, relative; None: unknown


def enters(tree: Tree, path: bytes, device: int) -> bool:
    """Whether the walk enters the directory ``path`` (relative to the root) on ``device``.

    On another device only when it is known not to be a mount point: a nested
    Btrfs subvolume, which moves with the live one, not a filesystem mounted inside.
    """
    if tree.devices is None or device in tree.devices:
        return True
    return tree.mounts is not None and path not in tree.mounts


def entry(kind: str, perm: int, size: int, mtime_ns: int, link: bytes) -> Entry:
    """The compared form of one entry (from lstat or from a repository node)."""
    if kind == "file":
        return (kind, perm & 0o7777, size, mtime_ns if size else 0, b"")
    if kind == "symlink":
        return (kind, 0, 0, 0, link)
    return (kind, perm & 0o7777, 0, 0, b"")


def walk(tree: Tree) -> tuple[Entries, str]:
    """Every entry below ``tree.root`` by relative path, and why the walk is incomplete ("" if it is not)."""
    found: Entries = {}
    base = os.fsencode(tree.root)
    pending = [b""]
    while pending:
        rel = pending.pop()
        here = os.path.join(base, rel) if rel else base
        try:
            with os.scandir(here) as listing:
                items = list(listing)
        except OSError as exc:
            return found, f"{os.fsdecode(here)} cannot be read: {exc.strerror}"
        for item in items:
            path = os.path.join(rel, item.name) if rel else item.name
            if path in tree.skip:
                continue
            try:  # one lstat per entry: the walk is part of the rollback's time
                st = item.stat(follow_symlinks=False)
                link = os.readlink(item.path) if stat.S_ISLNK(st.st_mode) else b""
            except OSError:
                continue  # gone since it was listed: a live tree changes
            kind = node_type(st.st_mode) or "socket"
            found[path] = entry(kind, st.st_mode, st.st_size, st.st_mtime_ns, link)
            if kind == "dir" and enters(tree, path, st.st_dev):
                pending.append(path)
    return found, ""


def compare(old: Entries, new: Entries) -> Changes:
    modified = sum(1 for k in old.keys() & new.keys() if old[k] != new[k])
    return Changes(len(new.keys() - old.keys()), len(old.keys() - new.keys()), modified)


def trees(
    pairs: Sequence[tuple[str, str]],
    volumes: Iterable[str] = (),
    skip: Iterable[str] = (),
    mount_points: Iterable[str] | None = None,
) -> list[tuple[Tree, Tree]]:
    """(live tree, replacement tree) for each (live mount point, replacement root) of a rollback.

    ``volumes``: the mount points of every volume the rollback replaces besides
    the pairs' own (their devices are entered on the live side). ``skip``:
    absolute live paths never counted. A pair's live root below another's is
    counted on its own, so the outer pair skips it. ``mount_points``: every
    mount target (default: the system's mount table, read once here).
    """
    lives = [live for live, _ in pairs]
    devices = frozenset(d for d in (_device(p) for p in [*lives, *volumes]) if d is not None)
    targets = _mount_targets() if mount_points is None else list(mount_points)
    out = []
    for live, replacement in pairs:
        rels = _relative([*lives, *skip], live)  # the other pairs' live roots below: counted on their own
        mounts = None if targets is None else _relative(targets, live)
        out.append((Tree(live, rels, devices or None, mounts), Tree(replacement, rels)))
    return out


def _relative(paths: Iterable[str], root: str) -> frozenset[bytes]:
    """Those of ``paths`` strictly below ``root``, relative to it."""
    return frozenset(os.fsencode(os.path.relpath(p, root)) for p in paths if strictly_inside(p, root))


def _mount_targets() -> list[str] | None:
    """None when the mount table cannot be read: other devices are not entered (undercounts)."""
    try:
        return [m.target for m in system_mounts()]
    except LocalSnapshotError:
        return None


def _device(path: str) -> int | None:
    try:
        return os.stat(path).st_dev
    except OSError:
        return None


def count(pairs: Sequence[tuple[Tree, Tree]]) -> tuple[Changes | None, str]:
    """The changes summed over ``pairs``; (None, why) when a tree cannot be read."""
    total = Changes()
    for old_tree, new_tree in pairs:
        old, why = walk(old_tree)
        if not why:
            new, why = walk(new_tree)
        if why:
            return None, why
        total += compare(old, new)
    return total, ""


def count_against(live: Sequence[Tree], expected: Sequence[Entries]) -> tuple[Changes | None, str]:
    """Each live tree against the entries it would become (a repository snapshot's tree)."""
    total = Changes()
    for tree, new in zip(live, expected, strict=True):
        old, why = walk(tree)
        if why:
            return None, why
        total += compare(old, {k: v for k, v in new.items() if not _skipped(k, tree.skip)})
    return total, ""


def _skipped(path: bytes, skip: frozenset[bytes]) -> bool:
    return any(path == s or path.startswith(s + b"/") for s in skip)


def total(counts: Iterable[tuple[Changes | None, str]]) -> tuple[Changes | None, str]:
    """Counts of several volumes summed; (None, the first reason) when one was not counted."""
    summed = Changes()
    for changes, why in counts:
        if changes is None:
            return None, why
        summed += changes
    return summed, ""
