"""What a rollback changes: entries added, removed and modified from the live tree to the one replacing it.

Counted before the swap, from two trees readable at that moment: the live
mount point of each volume, and its replacement (a local snapshot, a
restored fresh volume) or the repository snapshot's tree. An entry is
compared like ``amber diff`` would: its type, permission bits, a file's size
and, for a file with data, its mtime, a symlink's target. A directory that
cannot be read makes the count unknown, never wrong and never an error: the
rollback goes on and says why nothing was counted.

On the live side only the devices of the volumes being rolled back are
entered: another filesystem mounted inside (which the rollback does not
replace) is not counted. Paths a rollback does not replace are skipped on
both sides: amber's snapshot directory, ZFS's ``.zfs``, and (when each volume
is counted against its own snapshot) the mount points of the volumes below it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from amber.engine.metadata import node_type
from amber.sources.mounts import inside

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
    devices: frozenset[int] | None = None  # directories on other devices are counted, not entered


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
            if kind == "dir" and (tree.devices is None or st.st_dev in tree.devices):
                pending.append(path)
    return found, ""


def compare(old: Entries, new: Entries) -> Changes:
    modified = sum(1 for k in old.keys() & new.keys() if old[k] != new[k])
    return Changes(len(new.keys() - old.keys()), len(old.keys() - new.keys()), modified)


def trees(
    pairs: Sequence[tuple[str, str]], volumes: Iterable[str] = (), skip: Iterable[str] = ()
) -> list[tuple[Tree, Tree]]:
    """(live tree, replacement tree) for each (live mount point, replacement root) of a rollback.

    ``volumes``: the mount points of every volume the rollback replaces besides
    the pairs' own (their devices are entered on the live side). ``skip``:
    absolute live paths never counted. A pair's live root below another's is
    counted on its own, so the outer pair skips it.
    """
    lives = [live for live, _ in pairs]
    devices = frozenset(d for d in (_device(p) for p in [*lives, *volumes]) if d is not None)
    out = []
    for live, replacement in pairs:
        others = [p for p in lives if p != live and inside(p, live)]
        rels = frozenset(
            os.fsencode(os.path.relpath(p, live)) for p in [*others, *skip] if p != live and inside(p, live)
        )
        out.append((Tree(live, rels, devices or None), Tree(replacement, rels)))
    return out


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
