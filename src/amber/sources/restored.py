"""A rollback's last check before the swap: the restored tree holds exactly the repository snapshot's entries.

The restore verified every file's content (SHA-256 read back); this walk
compares names, types and file sizes both ways, so a file the restore did not
create, or one that was already in the fresh volume (a filesystem that was not
empty), stops the rollback before the live volume is touched. Directories that
are only in the restored tree are allowed: ``lost+found`` of a fresh ext4, the
mount points of nested volumes.
"""

from __future__ import annotations

import os

from amber.engine.metadata import node_type
from amber.engine.treewalk import lookup, walk
from amber.repository import Repository
from amber.sources.changes import Entries, entry


def differences(repo: Repository, snapshot_id: str, root: str, target: str) -> list[str]:
    """What differs between ``snapshot_id:root`` and the tree at ``target`` (paths shown below ``root``)."""
    snap = repo.load_snapshot(snapshot_id)
    _, tree_id = lookup(repo.load_tree, snap.tree, os.fsencode(root))
    expected: dict[bytes, tuple[str, int]] = {}
    if tree_id:
        for path, node in walk(repo.load_tree, tree_id):
            expected[path.lstrip(b"/")] = (node.type, node.size if node.type == "file" else 0)
    found: dict[bytes, tuple[str, int]] = {}
    base = os.fsencode(target)
    for directory, dirs, files in os.walk(base):
        for name in dirs + files:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            kind = node_type(st.st_mode) or "socket"
            found[os.path.relpath(path, base)] = (kind, st.st_size if kind == "file" else 0)
    problems = []
    for rel in sorted(expected.keys() | found.keys()):
        shown = os.path.join(root, os.fsdecode(rel))
        want, have = expected.get(rel), found.get(rel)
        if want is None and have is not None and have[0] != "dir":
            problems.append(f"{shown} is not in the snapshot")
        elif have is None and want is not None:
            problems.append(f"{shown} was not restored")
        elif want is not None and have is not None and want != have:
            problems.append(f"{shown} differs ({have[0]} of {have[1]} bytes, not {want[0]} of {want[1]})")
    return problems


def snapshot_entries(repo: Repository, snapshot_id: str, root: str) -> Entries:
    """The entries of ``snapshot_id:root`` in the form sources/changes.py compares (a dry run's count)."""
    snap = repo.load_snapshot(snapshot_id)
    _, tree_id = lookup(repo.load_tree, snap.tree, os.fsencode(root))
    found: Entries = {}
    if tree_id:
        for path, node in walk(repo.load_tree, tree_id):
            found[path.lstrip(b"/")] = entry(node.type, node.mode, node.size, node.mtime_ns, node.link_target)
    return found
