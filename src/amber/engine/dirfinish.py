"""Finishing walked directories into trees: post-order, with a bounded backlog.

The archiver walks a directory's entries and hands each file's read to a
thread pool; the directory is then *walked* but not *finished*. Finishing one
collects its files' results into their nodes, counts them in the summary, and
stores the tree (or reuses the parent snapshot's tree ID when the nodes are
the same). Directories finish in the order the walk left them (post-order), so
a subtree's ID is known before its parent's tree is encoded.

Walked directories wait here until their reads are done. When the walk runs
far ahead of a slow read (a large file), at most ``BACKLOG_NODES`` entries
wait; beyond that the walk blocks on the oldest directory rather than hold
the whole tree in memory.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from amber.engine.filereader import FileContent
from amber.engine.progress import Progress
from amber.engine.scanner import Entry
from amber.engine.smallfiles import BatchFuture, PendingContent
from amber.errors import TreeTooLarge
from amber.repository import Node, Summary, Tree

BACKLOG_NODES = 2_000  # entries of walked directories waiting for their files to be read


class TreeSaver(Protocol):
    def save_tree(self, tree: Tree) -> tuple[bytes, bool]: ...


@dataclass
class WalkDir:
    """A directory being walked, then waiting to be finished."""

    path: bytes
    entries: list[Entry]
    only: dict[bytes, object] | None  # restrict to these names (path prefixes), else all
    previous: dict[bytes, Node]
    node: Node | None  # our node in the parent directory; None for the root
    dev: int | None
    prev_id: bytes = b""  # this directory's tree in the parent snapshot
    prev_nodes: list[Node] = field(default_factory=list)
    pos: int = 0
    nodes: list[Node] = field(default_factory=list)
    pending: list[tuple[Node, PendingContent, Node | None]] = field(default_factory=list)
    batch: list[tuple[bytes, os.stat_result]] = field(default_factory=list)
    batch_bytes: int = 0
    batch_future: BatchFuture | None = None  # made with the batch's first file


def count_new_content(summary: Summary, content: FileContent) -> None:
    summary.data_blobs_added += content.new_blobs
    summary.data_added += content.new_bytes


class DirFinisher:
    """Finishes walked directories in the order they are added; ``root_id`` is the last one's tree."""

    def __init__(
        self,
        trees: TreeSaver,
        has: Callable[[bytes], bool],
        summary: Summary,
        progress: Progress,
        skip: Callable[[bytes, str], None],
        changed: list[str],
    ) -> None:
        self._trees = trees
        self._has = has
        self._summary = summary
        self._progress = progress
        self._skip = skip
        self._changed = changed
        self._counted: set[int] = set()  # reads already counted: hardlinks share one
        self._walked: deque[WalkDir] = deque()
        self._backlog = 0  # nodes held by walked directories not yet finished
        self.root_id = b""

    def add(self, d: WalkDir) -> None:
        """``d`` is walked: finish it and those before it as far as their reads are done."""
        self._walked.append(d)
        self._backlog += len(d.nodes)
        walked = self._walked
        while walked and (self._backlog > BACKLOG_NODES or all(f.done() for _, f, _ in walked[0].pending)):
            self._finish_oldest()  # waits for its reads when over the bound

    def finish_all(self) -> bytes:
        """Finish every walked directory, waiting for reads; returns the last (the root's) tree ID."""
        while self._walked:
            self._finish_oldest()
        return self.root_id

    def _finish_oldest(self) -> None:
        head = self._walked.popleft()
        self._backlog -= len(head.nodes)
        self.root_id = self._finish(head)

    def _finish(self, d: WalkDir) -> bytes:
        summary = self._summary
        failed: set[int] = set()
        for node, fut, prev in d.pending:
            path = d.path + b"/" + node.name
            try:
                content = fut.result()
            except OSError as exc:
                self._skip(path, exc.strerror or str(exc))
                failed.add(id(node))
                summary.total_files -= 1
                summary.total_bytes -= node.size
                continue
            node.content, node.sha256, node.size = content.content, content.sha256, content.size
            if content.changed_while_reading:
                self._changed.append(os.fsdecode(path))
                self._progress.error(path, "file changed while it was read")
            if prev is None:
                summary.files_new += 1
            else:
                summary.files_changed += 1
            if id(fut) not in self._counted:  # hardlinks share one read
                self._counted.add(id(fut))
                count_new_content(summary, content)
            self._progress.file_done(path, content.size, "new" if prev is None else "changed")
        nodes = [n for n in d.nodes if id(n) not in failed] if failed else d.nodes
        if d.prev_id and nodes == d.prev_nodes and self._has(d.prev_id):
            tree_id = d.prev_id  # same nodes encode to the same bytes, hence the same ID
        else:
            try:
                tree_id, new = self._trees.save_tree(Tree(nodes=nodes))
            except TreeTooLarge as exc:  # abort: a tree no reader would accept
                raise TreeTooLarge(f"{os.fsdecode(d.path) or '/'}: {exc}") from exc
            summary.tree_blobs_added += int(new)
        if d.node is not None:
            d.node.subtree = tree_id
        d.pending.clear()
        return tree_id
