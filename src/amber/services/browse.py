"""Looking inside snapshots: ls, diff, dump and the SHA-256 manifest (find: catalog.search)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import BinaryIO

from amber.engine.treewalk import ErrorSink, Walker, lookup, split_path, walk
from amber.errors import InvalidName, InvalidTree, UsageError
from amber.repository import Node, Repository
from amber.repository.model import MAX_PATH, MAX_TREE_DEPTH, show_name
from amber.services.snapshots import resolve, split_ref

# A tree that cannot be read, or a walk limit (design §9), goes to ``on_error``
# with the directory's path, and the rest is still listed; without it, it is raised.


def ls(
    repo: Repository, ref: str, path: str = "/", on_error: ErrorSink | None = None
) -> Iterator[tuple[bytes, Node]]:  # fmt: skip
    """Everything at and below ``path`` in the snapshot."""
    _, snap = resolve(repo, ref)
    node, tree_id = lookup(repo.load_tree, snap.tree, os.fsencode(path))
    prefix = os.fsencode(path.rstrip("/"))
    if node is not None:
        yield prefix, node
    if tree_id:
        yield from walk(repo.load_tree, tree_id, prefix, on_error)


def _same(a: Node, b: Node) -> bool:
    return (
        a.type == b.type and a.content == b.content and a.mode == b.mode
        and a.link_target == b.link_target and a.mtime_ns == b.mtime_ns
        and a.uid == b.uid and a.gid == b.gid and a.xattrs == b.xattrs
    )  # fmt: skip


def _by_name(walker: Walker, path: bytes, tree_id: bytes) -> dict[bytes, Node] | None:
    if not tree_id:
        return {}
    nodes = walker.nodes(path or b"/", tree_id)
    return None if nodes is None else {n.name: n for n in nodes}


def diff(
    repo: Repository, ref_a: str, ref_b: str, on_error: ErrorSink | None = None
) -> Iterator[tuple[str, bytes]]:  # fmt: skip
    """("+", path) added, ("-", path) removed, ("M", path) modified; sorted by path.

    Bounded like a walk (design §9): one budget for repeated subtrees and the
    depth and path limits; a directory beyond them is reported, not compared.
    """
    _, a = resolve(repo, ref_a)
    _, b = resolve(repo, ref_b)
    walker = Walker(repo.load_tree, on_error)
    # (parent path, name, tree a, tree b, depth): siblings share their parent's path
    stack: list[tuple[bytes, bytes, bytes, bytes, int]] = [(b"", b"", a.tree, b.tree, 0)]
    while stack:
        parent, dirname, ta, tb, depth = stack.pop()
        if ta == tb:
            continue
        base = parent + b"/" + dirname if dirname else parent
        if depth > MAX_TREE_DEPTH:
            walker.fail(base, InvalidTree(f"deeper than {MAX_TREE_DEPTH} levels; not compared"))
            continue
        na, nb = _by_name(walker, base, ta), _by_name(walker, base, tb)
        if na is None or nb is None:
            continue
        subdirs = []
        for name in sorted(na.keys() | nb.keys()):
            path = base + b"/" + name
            if len(path) > MAX_PATH:
                walker.fail(base, InvalidTree(f"a path is longer than {MAX_PATH} bytes; not compared"))
                break
            x, y = na.get(name), nb.get(name)
            if x is None or y is None:
                node = x or y
                assert node is not None
                yield ("-" if y is None else "+"), path
                if node.type == "dir" and node.subtree:
                    sign = "-" if y is None else "+"
                    for sub, _ in walker.walk(node.subtree, path):
                        yield sign, sub
                continue
            if x.type == "dir" and y.type == "dir":
                if x.subtree != y.subtree:
                    subdirs.append((base, name, x.subtree, y.subtree, depth + 1))
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


_SUM_ESCAPES = {b"\\": b"\\\\", b"\n": b"\\n", b"\r": b"\\r"}
_NEEDS_SUM_ESCAPE = re.compile(rb"[\\\n\r]")
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")


def _escape_control(m: re.Match[bytes]) -> bytes:
    return b"\\x%02x" % m.group()[0]


def manifest_line(sha256: bytes, path: bytes, escape_controls: bool = False) -> bytes:
    """One ``sha256sum -c`` line, GNU-escaped: a backslash, newline or CR makes it start with '\\'.

    Other control characters are kept (``sha256sum`` reads them raw) unless
    ``escape_controls``, for a terminal, writes them as ``\\xNN``.
    """
    escaped = _NEEDS_SUM_ESCAPE.search(path) is not None
    if escaped:
        path = _NEEDS_SUM_ESCAPE.sub(lambda m: _SUM_ESCAPES[m.group()], path)
    if escape_controls:
        path = _CONTROL.sub(_escape_control, path)
    return (b"\\" if escaped else b"") + sha256.hex().encode() + b"  " + path + b"\n"


def _safe_relative(path: bytes) -> bool:
    """No NUL and no empty, ``.`` or ``..`` component: a line can never point outside its directory."""
    return b"\0" not in path and all(p not in (b"", b".", b"..") for p in path.split(b"/"))


def manifest(
    repo: Repository, ref: str, absolute: bool = False, escape_controls: bool = False,
    on_error: ErrorSink | None = None,
) -> Iterator[bytes]:  # fmt: skip
    """Lines ``sha256sum -c`` accepts, one per regular file under ``ref`` (``SNAPSHOT[:SUBPATH]``).

    Paths are relative to the target that ``restore SNAPSHOT[:SUBPATH] --target T``
    fills (check with ``cd T && sha256sum -c``), or the full paths in the snapshot
    with ``absolute``.
    """
    ref, sub = split_ref(ref)
    _, snap = resolve(repo, ref)
    node, tree_id = lookup(repo.load_tree, snap.tree, os.fsencode(sub))
    parts = split_path(os.fsencode(sub))
    if node is not None and node.type != "dir":
        whole = b"/" + b"/".join(parts)
        files: Iterator[tuple[bytes, Node]] = iter([(whole, node)])
        strip = len(whole) - len(parts[-1])  # restore writes it as T/<name>
    else:
        prefix = b"/" + b"/".join(parts) if parts else b""
        files = walk(repo.load_tree, tree_id, prefix, on_error, lambda _p, n: n.type == "file")
        strip = len(prefix) + 1
    for path, file in files:
        if file.type != "file":
            continue
        shown = path if absolute else path[strip:]
        if not _safe_relative(shown[1:] if absolute else shown):
            error = InvalidName(f"{show_name(shown[:256])}: unsafe path left out of the manifest")
            if on_error is None:
                raise error
            on_error(path, error)
            continue
        yield manifest_line(file.sha256, shown, escape_controls)
