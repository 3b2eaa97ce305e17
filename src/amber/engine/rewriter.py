"""Rewrite a snapshot's trees without the entries a predicate excludes (``amber rewrite``, ``purge``).

Post-order with an explicit stack (depth never meets Python's recursion limit),
bottom-up like every writer of trees: a directory's new tree is saved after its
children's. A tree that loses nothing keeps its ID, so unchanged subtrees cost
one load and deduplicate. Results are remembered per (tree ID, path), since a
path pattern may match a shared subtree in one place and not in another, so
consecutive snapshots of the same data cost only their changed trees.

What goes is collected for erasure: every blob an excluded entry reaches
(content and, below a directory, every tree and file under it), the IDs of
the trees that were replaced (they name the excluded entries), and the
SHA-256 of every removed file. A tree that holds fields this version does not
know is refused rather than rewritten, since re-encoding it would lose them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import msgspec

from amber.engine.patterns import PathMatcher
from amber.errors import UsageError
from amber.repository import Node, Repository, Tree
from amber.repository.model import MAX_PATH, MAX_TREE_DEPTH, encode_tree

Excluded = Callable[[bytes, Node], bool]  # (absolute path, node) -> leave it out
_NODE_FIELDS = frozenset(Node.__struct_fields__)
_DROPPED_CAP = 10_000  # removed entries listed per subtree result (counts stay exact)


def exclusion(patterns: list[str], sha256: Collection[bytes] = ()) -> Excluded:
    """Entries matching ``patterns`` (backup's --exclude rules), or files whose SHA-256 is in ``sha256``."""
    matcher = PathMatcher(patterns)
    hashes = frozenset(sha256)
    if not matcher and not hashes:
        raise UsageError("nothing to leave out: give --exclude PATTERN (or a path, or --sha256)")

    def excluded(path: bytes, node: Node) -> bool:
        if hashes and node.type == "file" and node.sha256 in hashes:
            return True
        return bool(matcher) and matcher.matches(path, node.name)

    return excluded


def path_excluded(patterns: list[str], path: str) -> bool:
    """Whether a recorded path string (a snapshot's ``paths``, ``skipped`` ...) falls under ``patterns``:
    the path itself or one of its parent directories matches."""
    matcher = PathMatcher(patterns)
    if not matcher:
        return False
    raw = os.fsencode(path).rstrip(b"/")
    prefix = b""
    for part in raw.split(b"/"):
        if not part:
            continue
        prefix += b"/" + part
        if matcher.matches(prefix, part):
            return True
    return False


@dataclass(frozen=True)
class RemovedEntry:
    path: bytes  # the excluded entry (a directory covers everything under it)
    type: str
    files: int  # files it held (1 for a file)
    bytes: int  # their content bytes
    dirs: int  # directories it held (itself included)


@dataclass
class Erasable:
    """Everything the excluded entries reached, over all rewritten snapshots."""

    blobs: set[bytes] = field(default_factory=set)  # content and trees under excluded entries
    replaced_trees: set[bytes] = field(default_factory=set)  # old trees that listed them, and ancestors
    sha256: set[bytes] = field(default_factory=set)  # of every removed file

    @property
    def all_blobs(self) -> set[bytes]:
        return self.blobs | self.replaced_trees


@dataclass
class _Pending:
    tree_id: bytes
    path: bytes
    nodes: list[Node]
    out: list[Node] = field(default_factory=list)
    removed: list[RemovedEntry] = field(default_factory=list)
    next: int = 0
    changed: bool = False


class TreeRewriter:
    def __init__(self, repo: Repository, excluded: Excluded, dry_run: bool = False) -> None:
        self._repo = repo
        self._excluded = excluded
        self._dry_run = dry_run
        self._memo: dict[tuple[bytes, bytes], tuple[bytes, list[RemovedEntry]]] = {}
        self._below: dict[bytes, tuple[int, int, int]] = {}  # tree -> (files, bytes, dirs) under it
        self.erasable = Erasable()
        self.unsaved: dict[bytes, Tree] = {}  # dry run: the trees a rewrite would write, by ID

    def rewrite(self, root: bytes) -> tuple[bytes, list[RemovedEntry]]:
        """The new root's ID (the same when nothing matched) and the entries left out."""
        if (root, b"") in self._memo:
            return self._memo[root, b""]
        stack = [_Pending(root, b"", self._repo.load_tree(root).nodes)]
        while stack:
            top = stack[-1]
            if top.next == len(top.nodes):
                stack.pop()
                self._finish(top)
                continue
            node = top.nodes[top.next]
            path = top.path + b"/" + node.name
            top.next += 1
            if self._excluded(path, node):
                top.removed.append(self._drop(path, node))
                top.changed = True
                continue
            if node.type == "dir" and node.subtree and len(path) <= MAX_PATH:
                done = self._memo.get((node.subtree, path))
                if done is None:
                    if len(stack) > MAX_TREE_DEPTH:
                        raise UsageError(f"{os.fsdecode(path)}: deeper than {MAX_TREE_DEPTH} levels")
                    stack.append(_Pending(node.subtree, path, self._repo.load_tree(node.subtree).nodes))
                    top.next -= 1  # this node again once its subtree is done
                    continue
                new_sub, removed = done
                if new_sub != node.subtree:
                    node = msgspec.structs.replace(node, subtree=new_sub)
                    top.changed = True
                    top.removed.extend(removed[: max(0, _DROPPED_CAP - len(top.removed))])
            top.out.append(node)
        return self._memo[root, b""]

    def _finish(self, top: _Pending) -> None:
        if not top.changed:
            self._memo[top.tree_id, top.path] = (top.tree_id, [])
            return
        self._refuse_unknown_fields(top.tree_id, top.path)
        self.erasable.replaced_trees.add(top.tree_id)
        tree = Tree(top.out)
        if self._dry_run:
            new_id = self._repo.key.blob_id(encode_tree(tree))
            self.unsaved[new_id] = tree
        else:
            new_id, _ = self._repo.save_tree(tree)
        self._memo[top.tree_id, top.path] = (new_id, top.removed)

    def load_tree(self, tree_id: bytes) -> Tree:
        """A stored tree, or one a dry run would have written."""
        return self.unsaved.get(tree_id) or self._repo.load_tree(tree_id)

    def _refuse_unknown_fields(self, tree_id: bytes, path: bytes) -> None:
        """Readers ignore unknown keys; a rewrite would silently drop them."""
        raw = msgspec.msgpack.decode(self._repo.blobs.load(tree_id))
        nodes = raw.get("nodes", []) if isinstance(raw, dict) else []
        unknown = set(raw) - {"nodes"} if isinstance(raw, dict) else set()
        for node in nodes:
            if isinstance(node, dict):
                unknown |= set(node) - _NODE_FIELDS
        if unknown:
            where = os.fsdecode(path) or "/"
            raise UsageError(
                f"the tree of {where} holds fields this amber does not know ({', '.join(sorted(unknown))}); "
                "rewriting it would lose them: use the newer amber that wrote it"
            )

    def _drop(self, path: bytes, node: Node) -> RemovedEntry:
        """Collect what ``node`` reaches; returns what it held."""
        erasable = self.erasable
        if node.type == "file":
            erasable.blobs.update(node.content)
            if node.sha256:
                erasable.sha256.add(node.sha256)
            return RemovedEntry(path, node.type, 1, node.size, 0)
        if node.type == "dir" and node.subtree:
            files, size, dirs = self._collect(node.subtree)
            return RemovedEntry(path, node.type, files, size, dirs + 1)
        return RemovedEntry(path, node.type, 0, 0, 1 if node.type == "dir" else 0)

    def _collect(self, root: bytes) -> tuple[int, int, int]:
        """Add every blob under tree ``root``; (files, bytes, dirs) below it. Post-order, each tree once."""
        stack = [(root, False)]
        while stack:
            tree_id, expanded = stack.pop()
            if tree_id in self._below:
                continue
            nodes = self._repo.load_tree(tree_id).nodes
            subtrees = [n.subtree for n in nodes if n.type == "dir" and n.subtree]
            if not expanded:
                self.erasable.blobs.add(tree_id)
                for node in nodes:
                    if node.type == "file":
                        self.erasable.blobs.update(node.content)
                        if node.sha256:
                            self.erasable.sha256.add(node.sha256)
                stack.append((tree_id, True))
                stack.extend((sub, False) for sub in subtrees if sub not in self._below)
                continue
            files = sum(1 for n in nodes if n.type == "file")
            size = sum(n.size for n in nodes if n.type == "file")
            dirs = sum(1 for n in nodes if n.type == "dir")
            for sub in subtrees:  # children are done: they were pushed after this tree's second visit
                f, b, d = self._below[sub]
                files, size, dirs = files + f, size + b, dirs + d
            self._below[tree_id] = (files, size, dirs)
        return self._below[root]
