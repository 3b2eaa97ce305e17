"""Looking inside snapshots: ls, find, diff, dump and the SHA-256 manifest."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from amber.engine.treewalk import lookup, walk
from amber.errors import UsageError
from amber.repository import Node, Repository, Snapshot
from amber.services.snapshots import SnapshotFilter, resolve, select


def ls(repo: Repository, ref: str, path: str = "/") -> Iterator[tuple[bytes, Node]]:
    """Everything at and below ``path`` in the snapshot."""
    _, snap = resolve(repo, ref)
    node, tree_id = lookup(repo.load_tree, snap.tree, os.fsencode(path))
    prefix = os.fsencode(path.rstrip("/"))
    if node is not None:
        yield prefix, node
    if tree_id:
        yield from walk(repo.load_tree, tree_id, prefix)


@dataclass
class Match:
    snapshot_id: str
    snapshot: Snapshot
    path: bytes
    node: Node


def find(repo: Repository, pattern: str, flt: SnapshotFilter | None = None) -> Iterator[Match]:
    """Nodes whose name (or, for patterns with ``/``, whole path) matches, in every snapshot."""
    pat = os.fsencode(pattern)
    on_path = b"/" in pat
    for sid, snap in select(repo, flt or SnapshotFilter()):
        for path, node in walk(repo.load_tree, snap.tree):
            if fnmatch.fnmatchcase(path if on_path else node.name, pat):
                yield Match(sid, snap, path, node)


def _same(a: Node, b: Node) -> bool:
    return (
        a.type == b.type and a.content == b.content and a.mode == b.mode
        and a.link_target == b.link_target and a.mtime_ns == b.mtime_ns
        and a.uid == b.uid and a.gid == b.gid and a.xattrs == b.xattrs
    )  # fmt: skip


def diff(repo: Repository, ref_a: str, ref_b: str) -> Iterator[tuple[str, bytes]]:
    """("+", path) added, ("-", path) removed, ("M", path) modified; sorted by path."""
    _, a = resolve(repo, ref_a)
    _, b = resolve(repo, ref_b)
    stack: list[tuple[bytes, bytes, bytes]] = [(b"", a.tree, b.tree)]
    while stack:
        base, ta, tb = stack.pop()
        if ta == tb:
            continue
        na = {n.name: n for n in repo.load_tree(ta).nodes} if ta else {}
        nb = {n.name: n for n in repo.load_tree(tb).nodes} if tb else {}
        subdirs = []
        for name in sorted(na.keys() | nb.keys()):
            path = base + b"/" + name
            x, y = na.get(name), nb.get(name)
            if x is None or y is None:
                node = x or y
                assert node is not None
                yield ("-" if y is None else "+"), path
                if node.type == "dir" and node.subtree:
                    sign = "-" if y is None else "+"
                    for sub, _ in walk(repo.load_tree, node.subtree, path):
                        yield sign, sub
                continue
            if x.type == "dir" and y.type == "dir":
                if x.subtree != y.subtree:
                    subdirs.append((path, x.subtree, y.subtree))
                if not _same(x, y) and x.subtree == y.subtree:
                    yield "M", path
            elif not _same(x, y):
                yield "M", path
        stack.extend(reversed(subdirs))


def dump(repo: Repository, ref: str, path: str, out: BinaryIO) -> int:
    """Write one file's content to ``out``; returns bytes written."""
    _, snap = resolve(repo, ref)
    node, _ = lookup(repo.load_tree, snap.tree, os.fsencode(path))
    if node is None or node.type != "file":
        raise UsageError(f"{path} is not a file in the snapshot")
    written = 0
    for blob_id in node.content:
        data = repo.blobs.load(blob_id)
        out.write(data)
        written += len(data)
    return written


def _escape(path: bytes) -> tuple[str, bool]:
    """GNU coreutils escaping: backslash and newline make a line start with '\\'."""
    text = os.fsdecode(path)
    if "\\" in text or "\n" in text or "\r" in text:
        return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r"), True
    return text, False


def manifest(repo: Repository, ref: str, strip_leading_slash: bool = False) -> Iterator[bytes]:
    """Lines ``sha256sum -c`` accepts, one per regular file."""
    _, snap = resolve(repo, ref)
    for path, node in walk(repo.load_tree, snap.tree):
        if node.type != "file":
            continue
        shown = path[1:] if strip_leading_slash else path
        text, escaped = _escape(shown)
        line = ("\\" if escaped else "") + f"{node.sha256.hex()}  {text}\n"
        yield os.fsencode(line)
