"""Back up several named streams (database dumps) into one snapshot, beside a job's paths.

Each stream becomes one file at its path inside the snapshot (``/databases/postgresql/shop.pgdump``).
The streams are read one after another; a stream that fails (its opener raises, or
raises on close) fails the whole backup before any snapshot is written, so a
snapshot never silently lacks one of them (design §12, database sources).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import IO

from amber.engine.archiver import ArchiveResult
from amber.engine.dirfinish import count_new_content
from amber.engine.filereader import FileContent
from amber.engine.progress import Progress
from amber.errors import UsageError
from amber.repository import Node, Repository, Tree
from amber.repository.model import Summary
from amber.services.backup import (
    ArchivedPaths,
    BackupOutcome,
    BackupRequest,
    archive_paths,
    commit,
    content_reader,
    keeping_uploads,
)


@dataclass(frozen=True)
class NamedStream:
    """``path``: absolute (``/databases/sqlite/app.sqlite``); ``open`` yields the bytes or raises."""

    path: str
    open: Callable[[], AbstractContextManager[IO[bytes]]]


def _parts(path: str) -> list[bytes]:
    parts = [os.fsencode(p) for p in path.strip("/").split("/")]
    if len(parts) < 2 or any(p in (b"", b".", b"..") for p in parts):
        raise UsageError(f"stream path {path!r} must be an absolute path below a top directory")
    return parts


def _top(path: str) -> str:
    """``/databases`` for ``/databases/x/y``: the root entry a backup path occupies."""
    parts = os.path.normpath(os.path.abspath(path)).split("/")
    return "/" + parts[1] if len(parts) > 1 else "/"


def _file_node(name: bytes, content: FileContent) -> Node:
    now = time.time_ns()
    uid, gid = os.getuid(), os.getgid()
    return Node(
        name=name, type="file", mode=0o600, uid=uid, gid=gid, mtime_ns=now, atime_ns=now, ctime_ns=now,
        size=content.size, content=content.content, sha256=content.sha256,
    )  # fmt: skip


def _dir_node(name: bytes, subtree: bytes) -> Node:
    now = time.time_ns()
    return Node(name=name, type="dir", mode=0o700, uid=os.getuid(), gid=os.getgid(),
                mtime_ns=now, atime_ns=now, ctime_ns=now, subtree=subtree)  # fmt: skip


class _TreeBuilder:
    """Nested directories of file nodes, saved bottom-up."""

    def __init__(self, repo: Repository, summary: Summary) -> None:
        self._repo = repo
        self._summary = summary
        self._root: dict[bytes, object] = {}

    def add(self, parts: list[bytes], node: Node) -> None:
        level = self._root
        for part in parts[:-1]:
            child = level.setdefault(part, {})
            if not isinstance(child, dict):
                raise UsageError(f"two streams clash at {os.fsdecode(b'/'.join(parts))}")
            level = child
        if parts[-1] in level:
            raise UsageError(f"two streams have the same path /{os.fsdecode(b'/'.join(parts))}")
        level[parts[-1]] = node

    def top_nodes(self) -> list[Node]:
        return [self._node(name, entry) for name, entry in sorted(self._root.items())]

    def _node(self, name: bytes, entry: object) -> Node:
        if isinstance(entry, Node):
            return entry
        assert isinstance(entry, dict)
        nodes = [self._node(n, e) for n, e in sorted(entry.items())]
        tree_id, new = self._repo.save_tree(Tree(nodes=nodes))
        self._summary.tree_blobs_added += int(new)
        self._summary.dirs += 1
        return _dir_node(name, tree_id)


def backup_streams(
    repo: Repository, req: BackupRequest, streams: Sequence[NamedStream], progress: Progress | None = None,
    before_paths: Callable[[], None] | None = None,
) -> BackupOutcome:  # fmt: skip
    """One snapshot: ``req.paths`` (if any) and every stream. Nothing is written if a stream fails.

    With ``before_paths`` the streams are read first, then ``before_paths()`` runs (a job
    with filesystem snapshots takes them there and points ``req.source`` at them), then
    the paths are read; without it, the paths come first.
    """
    if not streams:
        raise UsageError("nothing to back up: no streams")
    progress = progress or repo.events
    parts = [_parts(s.path) for s in streams]
    tops = sorted({"/" + os.fsdecode(p[0]) for p in parts})
    clash = [p for p in req.paths if _top(p) in tops]
    if clash:
        raise UsageError(f"backup path {clash[0]} is where the dumps are stored; back it up in another job")
    started = time.monotonic()
    contents: list[FileContent] = []
    if before_paths is not None:
        repo.drop_missing_packs()  # never deduplicate a dump against deleted data
        contents = _read(repo, streams, progress)
        before_paths()
    if req.paths:
        done = archive_paths(repo, req, progress, recorded_extra=tops)
    else:
        done = ArchivedPaths([], req.host or socket.gethostname(), None,
                             ArchiveResult(b"", Summary()), repo.drop_missing_packs())  # fmt: skip
    if before_paths is None:
        contents = _read(repo, streams, progress)
    summary = done.result.summary
    builder = _TreeBuilder(repo, summary)
    with keeping_uploads(repo):
        for content, path in zip(contents, parts, strict=True):
            count_new_content(summary, content)
            summary.files_new += 1
            summary.total_files += 1
            summary.total_bytes += content.size
            builder.add(path, _file_node(path[-1], content))
        root: list[Node] = []
        if done.result.tree:
            repo.blobs.flush()  # the paths' root tree is still in an open pack; the index must know it
            root = repo.load_tree(done.result.tree).nodes
        top = builder.top_nodes()
        taken = {n.name for n in root} & {n.name for n in top}
        if taken:  # a backup path of / on a system that has a /databases directory
            raise UsageError(f"/{os.fsdecode(taken.pop())} is both a backed-up directory and where dumps go")
        nodes = sorted([*root, *top], key=lambda n: n.name)
        tree_id, new = repo.save_tree(Tree(nodes=nodes))
    summary.tree_blobs_added += int(new)
    summary.duration_s = round(time.monotonic() - started, 3)
    done.result.tree = tree_id
    done.paths = sorted([*done.paths, *tops])
    return commit(repo, req, done)


def _read(repo: Repository, streams: Sequence[NamedStream], progress: Progress) -> list[FileContent]:
    """Store every stream's content, one after another."""
    reader = content_reader(repo, progress)
    contents = []
    with keeping_uploads(repo):
        for stream in streams:
            repo.cancel.check()
            with stream.open() as data:
                contents.append(reader.read_stream(data))
    return contents
