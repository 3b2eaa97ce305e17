"""Repair: rebuild the index from pack headers; salvage snapshots that reference lost data.

``rebuild_index`` reads only each pack's header (ranged loads), writes index
files that supersede every old one, then removes the old ones (deletion
markers stay). Entries for packs that no longer exist disappear with them.

``repair_snapshots`` rewrites the trees of snapshots that reference blobs the
index lacks (or whose pack is gone): a file keeps the blobs that survive and
is marked ``damaged`` (its size becomes what survives; ``sha256`` stays the
original's), a directory whose tree is lost becomes an empty directory marked
``damaged``. Trees are written bottom-up, flushed, then the new snapshot is
written, and only then is the old snapshot removed. The new snapshot records
the old one's ID in ``original`` (kept if it already had one).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import msgspec

from amber.engine.progress import NullProgress, Progress
from amber.errors import AmberError, IntegrityError, ObjectNotFound
from amber.repository import BlobType, Node, Repository, Tree
from amber.repository.model import MAX_PATH, MAX_TREE_DEPTH, encode_tree
from amber.storage import FileType

_ROWS_PER_FILE = 200_000


@dataclass
class IndexRepairResult:
    packs: int = 0
    blobs: int = 0
    bad_packs: list[str] = field(default_factory=list)  # header unreadable: not indexed
    dropped_packs: int = 0  # were indexed, no longer stored
    added_packs: int = 0  # stored, were not indexed
    index_written: int = 0
    index_removed: int = 0


def rebuild_index(repo: Repository, progress: Progress | None = None) -> IndexRepairResult:
    progress = progress or NullProgress()
    blobs = repo.blobs
    result = IndexRepairResult()
    old_indexed = blobs.index.packs()
    old_files = sorted(fi.name for fi in repo.backend.list(FileType.INDEX) if fi.name not in blobs.pending)
    stored = {fi.name: fi.size for fi in repo.backend.list(FileType.PACK)}
    batch: dict[str, Any] = {}
    rows = 0
    for pack in sorted(stored):
        try:
            header = blobs.read_pack_header(pack, stored[pack])
        except (IntegrityError, ObjectNotFound) as exc:
            result.bad_packs.append(f"{pack[:16]}: {exc}")
            continue
        result.packs += 1
        result.blobs += len(header)
        result.added_packs += pack not in old_indexed
        batch[pack] = list(header)
        rows += len(header)
        progress.bytes_done(stored[pack])
        if rows >= _ROWS_PER_FILE:
            blobs.save_index_file(batch)
            result.index_written += 1
            batch, rows = {}, 0
    if batch or old_files:  # only the last file names the old ones (design §8)
        blobs.save_index_file(batch, blobs.superseding(old_files))
        result.index_written += 1
    result.dropped_packs = len(old_indexed - stored.keys())
    for name in old_files:  # only now: everything they listed is in the new files
        blobs.remove_index_file(name)
        result.index_removed += 1
    repo.load_index()
    return result


@dataclass
class SnapshotRepairResult:
    snapshots: int = 0
    repaired: list[tuple[str, str]] = field(default_factory=list)  # (old id, new id or "")
    damaged: list[tuple[str, str]] = field(default_factory=list)  # (old snapshot id, path)
    unreadable: list[str] = field(default_factory=list)  # snapshot files that cannot be loaded


class _Pending:
    """A tree being repaired: its nodes, the repaired ones so far, and whether any changed."""

    __slots__ = ("changed", "next", "nodes", "out", "path", "tree_id")

    def __init__(self, tree_id: bytes, path: bytes, nodes: list[Node]) -> None:
        self.tree_id = tree_id
        self.path = path
        self.nodes = nodes
        self.out: list[Node] = []
        self.next = 0
        self.changed = False


class SnapshotRepairer:
    def __init__(self, repo: Repository, dry_run: bool = False) -> None:
        self._repo = repo
        self._dry_run = dry_run
        self._stored = {fi.name for fi in repo.backend.list(FileType.PACK)}
        # (old tree id, length of its path) -> new id (None: unreadable). The length is
        # part of the key because entries past MAX_PATH are dropped: a shared subtree
        # repaired deep down must not lose entries where it sits higher up.
        self._memo: dict[tuple[bytes, int], bytes | None] = {}
        self._empty: bytes | None = None

    def run(self) -> SnapshotRepairResult:
        repo = self._repo
        result = SnapshotRepairResult()
        errors: list[tuple[str, AmberError]] = []
        snaps = repo.snapshots(errors)
        result.unreadable = [name for name, _ in errors]
        result.snapshots = len(snaps)
        rewrites: list[tuple[str, bytes]] = []
        for name, snap in sorted(snaps.items(), key=lambda s: s[1].time):
            damaged: list[str] = []
            new_root = self._fix(snap.tree, b"", damaged)
            if new_root is None:
                new_root = self._empty_tree()
                damaged.append("/")
            result.damaged.extend((name, p) for p in damaged)
            if new_root != snap.tree:
                rewrites.append((name, new_root))
        if self._dry_run:
            result.repaired = [(name, "") for name, _ in rewrites]
            return result
        repo.blobs.flush()  # trees before the snapshots that need them
        for name, root in rewrites:
            snap = snaps[name]
            new = msgspec.structs.replace(snap, tree=root, original=snap.original or name)
            new_id = repo.save_snapshot(new)
            repo.remove_snapshot(name)
            result.repaired.append((name, new_id))
        return result

    def _present(self, blob_id: bytes, kind: BlobType) -> bool:
        loc = self._repo.blobs.index.lookup(blob_id)
        return loc is not None and loc.type is kind and loc.pack in self._stored

    def _save(self, tree: Tree) -> bytes:
        if self._dry_run:
            return self._repo.key.blob_id(encode_tree(tree))
        tree_id, _ = self._repo.save_tree(tree)
        return tree_id

    def _empty_tree(self) -> bytes:
        if self._empty is None:
            self._empty = self._save(Tree())
        return self._empty

    def _nodes(self, tree_id: bytes) -> list[Node] | None:
        if not self._present(tree_id, BlobType.TREE):
            return None
        try:
            return self._repo.load_tree(tree_id).nodes
        except AmberError:  # unreadable or invalid (design §9): lost like a missing tree
            return None

    def _fix(self, root: bytes, path: bytes, damaged: list[str]) -> bytes | None:
        """The repaired tree's ID (the same when nothing is lost), or None if unreadable.

        Post-order with an explicit stack, so depth never meets Python's recursion
        limit; a subtree deeper than MAX_TREE_DEPTH is lost like an unreadable one,
        and an entry whose path is longer than MAX_PATH is dropped.
        """
        if (root, len(path)) in self._memo:
            return self._memo[root, len(path)]
        nodes = self._nodes(root)
        if nodes is None:
            self._memo[root, len(path)] = None
            return None
        stack = [_Pending(root, path, nodes)]
        while stack:
            top = stack[-1]
            if top.next == len(top.nodes):
                stack.pop()
                new_id = self._save(Tree(top.out)) if top.changed else top.tree_id
                self._memo[top.tree_id, len(top.path)] = new_id
                continue
            node = top.nodes[top.next]
            node_path = top.path + b"/" + node.name
            top.next += 1
            if len(node_path) > MAX_PATH:  # no reader would list it: dropped, and reported
                damaged.append(os.fsdecode(node_path[:MAX_PATH]))
                top.changed = True
                continue
            sub: bytes | None = None
            if node.type == "dir" and node.subtree:
                key = (node.subtree, len(node_path))
                if key not in self._memo and len(stack) <= MAX_TREE_DEPTH:
                    below = self._nodes(node.subtree)
                    if below is not None:
                        stack.append(_Pending(node.subtree, node_path, below))
                        top.next -= 1  # this node again once its subtree is done
                        continue
                    self._memo[key] = None
                sub = self._memo.get(key)
            fixed = self._fix_node(node, node_path, damaged, sub)
            top.changed |= fixed is not node
            top.out.append(fixed)
        return self._memo[root, len(path)]

    def _fix_node(self, node: Node, path: bytes, damaged: list[str], sub: bytes | None) -> Node:
        """``sub``: the repaired subtree of a directory (None when it is lost)."""
        if node.type == "file" and node.content:
            keep = [b for b in node.content if self._present(b, BlobType.DATA)]
            if len(keep) == len(node.content):
                return node
            damaged.append(os.fsdecode(path))
            size = 0
            for blob_id in keep:
                loc = self._repo.blobs.index.lookup(blob_id)
                size += loc.plain_length if loc else 0
            return msgspec.structs.replace(node, content=keep, size=size, damaged=True)
        if node.type == "dir":
            if sub is None:
                damaged.append(os.fsdecode(path))
                return msgspec.structs.replace(node, subtree=self._empty_tree(), damaged=True)
            if sub != node.subtree:
                return msgspec.structs.replace(node, subtree=sub)
        return node
