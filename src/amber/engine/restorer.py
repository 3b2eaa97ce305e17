"""The restorer: trees back into a target, confined to it, packs read in parallel.

The walk creates directories, symlinks, fifos, devices and empty files as they
come, each relative to its parent directory's descriptor (``restore_fs``);
files with content are collected into bounded batches whose blobs are written
pack by pack on a thread pool (``restore_files``), or, with ``processes`` above 1,
by forked worker processes (``restore_procs``). Every name is checked before
use, and a name seen twice in one directory is skipped: restore never leaves
its target, whatever the tree says and whoever else writes in the target.
An entry that cannot be made (a directory: with everything under it) is
skipped with a one-line error; the rest goes on. Nothing is removed but the one
entry in the way of a new one, and never a non-empty directory.
Metadata is applied once a file's last blob lands; directories get theirs
last, each after everything below it, so read-only directories can still be filled.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field

from amber.cancel import CancelToken
from amber.engine.gctuning import rarer_gc
from amber.engine.metadata import apply_to_fd, apply_to_special, apply_to_symlink
from amber.engine.patterns import PathMatcher
from amber.engine.progress import NullProgress, Progress
from amber.engine.restore_files import BlobId, ContentWriter
from amber.engine.restore_fs import Dir, TargetTree, bad_name, clear_entry, lstat_at
from amber.engine.restore_io import BlobSource
from amber.engine.restore_procs import ForkedWriter
from amber.engine.restore_report import Reporter, RestoreFile, RestoreResult
from amber.engine.treewalk import TreeLoader
from amber.errors import AmberError
from amber.repository import Node

__all__ = ["BlobSource", "RestoreOptions", "RestoreResult", "Restorer"]


@dataclass
class RestoreOptions:
    include: PathMatcher = field(default_factory=lambda: PathMatcher([]))
    exclude: PathMatcher = field(default_factory=lambda: PathMatcher([]))
    verify: bool = False
    workers: int = min(4, max(2, os.cpu_count() or 2))  # more only add GIL hand-offs
    processes: int = 1  # above 1: contents written by forked workers (``restore_procs``)


_BATCH_FILES = 8192
_BATCH_BYTES = 1 << 30
_FIRST_BATCH_FILES = 256  # the workers start early; each batch doubles up to _BATCH_FILES


@dataclass(slots=True)
class _Level:
    """A directory on the current path of the walk and the names restored in it so far."""

    rel: bytes
    dir: Dir
    names: set[bytes] = field(default_factory=set)


@dataclass(slots=True)
class _Walk:
    target: bytes
    tree: TargetTree
    writer: ContentWriter | ForkedWriter
    levels: list[_Level]
    dirs: list[tuple[Dir, Node, bytes]] = field(default_factory=list)
    links: list[tuple[RestoreFile, Dir, bytes, bytes]] = field(default_factory=list)
    first_link: dict[tuple[int, int], RestoreFile] = field(default_factory=dict)
    files: list[RestoreFile] = field(default_factory=list)
    batch_bytes: int = 0
    batch_files: int = _FIRST_BATCH_FILES


class Restorer:
    def __init__(
        self, trees: TreeLoader, blobs: BlobSource, options: RestoreOptions | None = None,
        progress: Progress | None = None, blob_id: BlobId | None = None, cancel: CancelToken | None = None,
    ) -> None:  # fmt: skip
        """``blob_id`` computes a data blob's ID (the repository's keyed hash): with it,
        files already in the target are checked blob by blob and only what differs
        is rewritten; without it they are replaced."""
        self._trees = trees
        self._cancel = (cancel or CancelToken()).watch()
        self._blobs = blobs
        self._opts = options or RestoreOptions()
        self._blob_id = blob_id
        self._result = RestoreResult()
        self._report = Reporter(self._result, progress or NullProgress())

    def restore(self, items: Iterator[tuple[bytes, Node]], target: bytes) -> RestoreResult:
        """Restore (relative path, node) pairs, parents before children, under target.

        Each path is its parent directory's path, ``/`` and the node's name.
        """
        try:
            tree = TargetTree(target)
        except OSError as exc:
            raise AmberError(f"cannot restore into {os.fsdecode(target)}: {exc.strerror}") from exc
        try:
            with rarer_gc(), self._writer(tree) as writer:  # a few objects per entry, no cycles
                w = _Walk(target, tree, writer, [_Level(b"", tree.root)])
                skip_under: bytes | None = None
                for rel, node in self._select(items):
                    self._cancel.check()  # a safe point: finished files stay
                    if skip_under is not None and rel.startswith(skip_under):
                        continue
                    skip_under = None
                    if not self._entry(w, rel, node) and node.type == "dir":
                        skip_under = rel + b"/"
                writer.write(w.files)
                writer.drain()
            self._link(w)
            self._finish_dirs(w)
        finally:
            tree.close()
        return self._result

    def _writer(self, tree: TargetTree) -> ContentWriter | ForkedWriter:
        opts, report, cancel = self._opts, self._report, self._cancel
        inner = ContentWriter(tree, self._blobs, self._blob_id, opts.verify, opts.workers, report, cancel)
        return ForkedWriter(inner, opts.processes, report, cancel) if opts.processes > 1 else inner

    def restore_tree(self, tree_id: bytes, target: bytes) -> RestoreResult:
        """Restore a whole tree under target; a tree that cannot be read is skipped as damage."""
        return self.restore(self._readable(tree_id, target), target)

    def _readable(self, tree_id: bytes, target: bytes) -> Iterator[tuple[bytes, Node]]:
        """Walk like ``treewalk.walk``, reporting a tree that fails to load instead of stopping."""
        stack: list[tuple[bytes, Iterator[Node]]] = []

        def enter(base: bytes, subtree: bytes) -> None:
            try:
                stack.append((base, iter(self._trees(subtree).nodes)))
            except AmberError as exc:
                with self._report.lock:
                    self._result.damaged += 1
                self._report.error(target + base, f"cannot read directory: {exc.message}")

        enter(b"", tree_id)
        while stack:
            base, nodes = stack[-1]
            node = next(nodes, None)
            if node is None:
                stack.pop()
                continue
            path = base + b"/" + node.name
            yield path, node
            if node.type == "dir" and node.subtree:
                enter(path, node.subtree)

    def _entry(self, w: _Walk, rel: bytes, node: Node) -> bool:
        """Restore one entry; False when it (and a directory's contents) was skipped."""
        path = w.target + rel
        name = node.name
        why = bad_name(name) or ("" if rel.endswith(b"/" + name) else "path does not end with its name")
        level = None if why else _parent_level(w.levels, rel[: -len(name) - 1])
        if level is None:
            why = why or "its directory was not restored"
        elif name in level.names:
            why = "a second entry of this name in its directory"
        if why or level is None:
            under = ", with everything under it" if node.type == "dir" else ""
            self._report.error(path, f"skipped: {why}{under}")
            return False
        level.names.add(name)
        if node.damaged:  # `repair snapshots` kept what survived of it
            with self._report.lock:
                self._result.warnings.append(
                    f"{os.fsdecode(path)}: damaged in the repository; restored what survived"
                )
        try:
            if node.type == "dir":
                d = w.tree.enter(level.dir, name)
                w.levels.append(_Level(rel, d))
                w.dirs.append((d, node, path))
                self._result.dirs += 1
            elif node.type == "file":
                self._file(w, level.dir, name, path, node)
            else:
                self._special(w.tree, level.dir, name, path, node)
        except (OSError, AmberError) as exc:
            reason = exc.message if isinstance(exc, AmberError) else exc.strerror
            if node.type == "dir":
                self._report.error(path, f"cannot create directory: {reason}; skipped with all under it")
                return False
            self._report.error(path, f"cannot create: {reason}")
        return True

    def _file(self, w: _Walk, parent: Dir, name: bytes, path: bytes, node: Node) -> None:
        links = node.links > 1
        if links and (first := w.first_link.get((node.device, node.inode))) is not None:
            w.links.append((first, parent, name, path))
            return
        f = RestoreFile(parent, name, path, node)
        if not parent.made:  # else nothing is in the way (O_EXCL refuses what races us)
            with w.tree.fd(parent) as dfd:
                st = lstat_at(dfd, name)
                resumable = st is not None and stat.S_ISREG(st.st_mode) and st.st_nlink == 1
                if resumable and node.content and w.writer.resumes:
                    f.existing = True
                elif st is not None and (why := clear_entry(dfd, name)):
                    raise AmberError(why)
        if links:
            w.first_link[node.device, node.inode] = f
        if not node.content:
            w.writer.create_empty(f)
            return
        w.files.append(f)
        w.batch_bytes += node.size
        if len(w.files) >= min(w.batch_files, _BATCH_FILES) or w.batch_bytes >= _BATCH_BYTES:
            w.writer.write(w.files)  # written while the walk goes on; one batch in flight at most
            w.files, w.batch_bytes = [], 0
            w.batch_files *= 2

    def _special(self, tree: TargetTree, parent: Dir, name: bytes, path: bytes, node: Node) -> None:
        warnings: list[str] = []
        with tree.fd(parent) as dfd:
            if not parent.made and (why := clear_entry(dfd, name)):
                raise AmberError(why)
            if node.type == "symlink":
                os.symlink(node.link_target, name, dir_fd=dfd)
                apply_to_symlink(dfd, name, node, warnings, path)
            elif node.type in ("fifo", "chardev", "blockdev"):
                if node.type == "fifo":
                    os.mkfifo(name, 0o600, dir_fd=dfd)
                else:
                    kind = stat.S_IFCHR if node.type == "chardev" else stat.S_IFBLK
                    os.mknod(name, kind | 0o600, node.rdev, dir_fd=dfd)
                apply_to_special(dfd, name, node, warnings, path)
            else:
                raise AmberError(f"unknown node type {node.type!r}")
        with self._report.lock:  # workers count files too
            self._result.warnings.extend(warnings)
            self._result.files += 1

    def _link(self, w: _Walk) -> None:
        for first, parent, name, path in w.links:
            if first.failed or not first.created:
                self._report.error(path, "cannot hardlink: its first link was not restored")
                continue
            try:
                w.tree.link(first.parent, first.name, first.ino, parent, name)
                self._result.files += 1
            except (OSError, AmberError) as exc:
                reason = exc.message if isinstance(exc, AmberError) else exc.strerror
                self._report.error(path, f"cannot hardlink: {reason}")

    def _finish_dirs(self, w: _Walk) -> None:
        """Directory metadata, each directory after everything below it (the walk's order
        reversed: siblings and their parents follow each other, so their descriptors are
        mostly still open), each through a descriptor reopened safely. Its ``fstat`` spares
        the ``chown`` when the owner is already right (most restores): a cheaper call at
        the restore's end, where one core works alone."""
        for d, node, path in reversed(w.dirs):
            try:
                with w.tree.fd(d) as fd:
                    apply_to_fd(fd, node, self._result.warnings, path, made=os.fstat(fd))
            except (OSError, AmberError) as exc:
                reason = exc.message if isinstance(exc, AmberError) else exc.strerror
                self._report.error(path, f"metadata not applied: {reason}")

    # -- selection --------------------------------------------------------
    def _select(self, items: Iterator[tuple[bytes, Node]]) -> Iterator[tuple[bytes, Node]]:
        """Apply include/exclude; with includes, emit parent dirs only when needed."""
        inc, exc = self._opts.include, self._opts.exclude
        if not inc and not exc:
            yield from items
            return
        skip_under: bytes | None = None
        included_under: bytes | None = None
        pending_dirs: list[tuple[bytes, Node]] = []
        for rel, node in items:
            if skip_under is not None and rel.startswith(skip_under):
                continue
            skip_under = None
            if exc and exc.matches(rel, node.name):
                if node.type == "dir":
                    skip_under = rel + b"/"
                continue
            if not inc:
                yield rel, node
                continue
            if included_under is not None and not rel.startswith(included_under):
                included_under = None
            while pending_dirs and not rel.startswith(pending_dirs[-1][0] + b"/"):
                pending_dirs.pop()
            if included_under is not None or inc.matches(rel, node.name):
                yield from pending_dirs
                pending_dirs.clear()
                yield rel, node
                if node.type == "dir" and included_under is None:
                    included_under = rel + b"/"
            elif node.type == "dir":
                pending_dirs.append((rel, node))


def _parent_level(levels: list[_Level], parent_rel: bytes) -> _Level | None:
    """The level of ``parent_rel`` on the current path; deeper levels are left behind."""
    for i in range(len(levels) - 1, -1, -1):
        if levels[i].rel == parent_rel:
            del levels[i + 1 :]
            return levels[i]
    return None
