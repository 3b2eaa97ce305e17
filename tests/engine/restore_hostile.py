"""Helpers for hostile-restore tests: a canary tree around the target, and crafted trees.

Crafted trees are encoded with msgspec directly and stored as tree blobs, so
no validation on the way in can stop them; :class:`MemoryTrees` serves them
to the restorer without decoding at all.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import msgspec

from amber.repository import BlobType, Node, Repository, Tree

Entry = tuple[int, int, int, int, bytes]  # mode, uid, gid, mtime_ns, contents or link target


class Canary:
    """A tree of files, directories and modes around an empty ``target``: ``root/a/b/target``.

    ``outside`` is where planted symlinks point. :meth:`assert_unchanged` compares
    everything under ``root`` except the target with what was recorded.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.parent = root / "a" / "b"
        self.target = self.parent / "target"
        self.outside = root / "outside"
        for d in (root / "a" / "sib-dir", self.parent / "sib-dir", self.outside / "deeper", self.target):
            d.mkdir(parents=True)
        for f in (
            root / "top.txt",
            root / "a" / "sib.txt",
            self.parent / "sib.txt",
            self.parent / "sib-dir" / "inner.txt",
            self.outside / "precious.txt",
        ):
            f.write_bytes(b"canary " + str(f).encode())
        os.symlink("sib.txt", self.parent / "sib-link")
        os.chmod(self.parent, 0o750)
        os.chmod(self.outside, 0o755)
        for p in (self.root / "a", self.parent, self.outside, self.root):
            os.utime(p, ns=(1_000_000_000, 1_000_000_000))
        self.before = self.record()

    def record(self) -> dict[bytes, Entry]:
        out: dict[bytes, Entry] = {}
        root = os.fsencode(self.root)
        skip = os.fsencode(self.target)
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) != skip]
            for name in [b"", *dirnames, *filenames]:
                path = os.path.join(dirpath, name) if name else dirpath
                st = os.lstat(path)
                body = b""
                if stat.S_ISLNK(st.st_mode):
                    body = os.readlink(path)
                elif stat.S_ISREG(st.st_mode):
                    body = Path(os.fsdecode(path)).read_bytes()
                out[path] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, body)
        return out

    def assert_unchanged(self) -> None:
        after = self.record()
        added = sorted(set(after) - set(self.before))
        removed = sorted(set(self.before) - set(after))
        changed = sorted(p for p in set(after) & set(self.before) if after[p] != self.before[p])
        assert not (added or removed or changed), (
            f"outside the target: added {added}, removed {removed}, changed {changed}"
        )


class MemoryTrees:
    """Trees by ID in memory: a TreeLoader that decodes nothing."""

    def __init__(self) -> None:
        self.trees: dict[bytes, Tree] = {}

    def add(self, *nodes: Node) -> bytes:
        tree = Tree(list(nodes))
        tree_id = hashlib.sha256(msgspec.msgpack.encode(tree)).digest()
        self.trees[tree_id] = tree
        return tree_id

    def __call__(self, tree_id: bytes) -> Tree:
        return self.trees[tree_id]


def file_node(repo: Repository, name: bytes, data: bytes, mode: int = 0o644) -> Node:
    """A one-blob file node whose blob is stored in ``repo`` (flush before reading it)."""
    blob_id = repo.key.blob_id(data)
    repo.blobs.save(BlobType.DATA, data, blob_id)
    return Node(
        name,
        "file",
        mode=mode,
        size=len(data),
        content=[blob_id],
        sha256=hashlib.sha256(data).digest(),
        mtime_ns=2_000_000_000,
    )


def dir_node(name: bytes, subtree: bytes, mode: int = 0o755) -> Node:
    return Node(name, "dir", mode=mode, subtree=subtree, mtime_ns=3_000_000_000)


def symlink_node(name: bytes, target: bytes) -> Node:
    return Node(name, "symlink", mode=0o777, link_target=target)


def save_raw_tree(repo: Repository, *nodes: Node) -> bytes:
    """Store a tree blob exactly as given (no name checks on the way in)."""
    data = msgspec.msgpack.encode(Tree(list(nodes)))
    tree_id = repo.key.blob_id(data)
    repo.blobs.save(BlobType.TREE, data, tree_id)
    return tree_id
