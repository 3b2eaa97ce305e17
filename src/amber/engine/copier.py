"""The copier: rewrites a snapshot's trees from one repository into another.

Blob IDs are keyed hashes, so the same plaintext has a different ID in every
repository. A copy therefore keeps the source's chunk boundaries, re-hashes each
data blob with the destination key, stores it only if the destination lacks it,
and rewrites every tree bottom-up with destination IDs.

To avoid reading what the destination already holds, a source ID is resolved
without reading its blob when possible:

* a *reference pair* (a source tree and its earlier copy in the destination,
  e.g. the snapshot's parent) is walked in step with the tree being copied: an
  unchanged subtree maps to the reference's destination subtree and is not
  descended; an unchanged file takes the reference's content IDs;
* a bounded cache maps source IDs seen earlier in this run to destination IDs.

When both repositories share the ID key (``amber init --copy-chunker-params``),
a blob has the same ID on both sides: nothing is re-hashed, trees are copied as
they are instead of rewritten, and a blob the destination holds is skipped on
its ID alone (*same-ID mode*).

Every shortcut is checked against the destination index. Data blobs that still
need their plaintext are handed out in batches, grouped by source pack, to
worker threads (AES, zstd and BLAKE3 release the GIL) while the walk goes on.
A blob's encoded payload is sealed again as is: compressed data is decompressed
only to verify and re-hash it, never recompressed (when the destination writer
can). Memory is bounded by the batch size, the cache size and the tree depth,
not by the snapshot's size.
The caller flushes the destination and then writes the snapshot (data -> index
-> snapshot).
"""

from __future__ import annotations

import os
import queue
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Protocol

import msgspec

from amber.cancel import CancelToken
from amber.engine.copypack import BlobId, BlobReader, BlobWriter, CopyStats, PackCopier
from amber.engine.gctuning import rarer_gc
from amber.engine.progress import NullProgress, Progress
from amber.engine.treebatch import TreeBatch
from amber.errors import AmberError, IntegrityError, InvalidTree, ObjectNotFound
from amber.repository import BlobType, Location, Node, Tree
from amber.repository.model import MAX_TREE_DEPTH, encode_tree

__all__ = ["Copier", "CopyOptions", "CopyStats", "IdCache"]


class TreeReader(Protocol):
    def load_tree(self, tree_id: bytes) -> Tree: ...


class TreeSource(TreeReader, Protocol):
    def load_trees(self, tree_ids: Sequence[bytes]) -> list[Tree | None]: ...


Pairs = list[tuple[bytes, bytes]]


class JobRunner(Protocol):
    """Runs copy jobs elsewhere (worker processes) instead of the copier's own threads."""

    def submit(
        self, fn: Callable[..., Pairs], pack: str, wanted: list[tuple[bytes, Location]]
    ) -> Future[Pairs]: ...


def _subtrees(tree: Tree) -> list[bytes]:
    return [n.subtree for n in tree.nodes if n.type == "dir" and n.subtree]


def _default_workers() -> int:
    # One pack reader per core, 2 to 4: more threads than cores only add GIL
    # hand-offs (measured: 4 workers on 2 cores cost ~15% more CPU than 2).
    return min(4, max(2, os.cpu_count() or 2))


@dataclass
class CopyOptions:
    workers: int = field(default_factory=_default_workers)  # pack reader threads (or processes)
    processes: bool | None = None  # jobs in worker processes; None: when the caller finds it pays
    batch_blobs: int = 8192  # data blobs collected before fetching them (fewer while workers idle)
    cache_entries: int = 1 << 20  # source ID -> destination ID, about 200 bytes each


class IdCache:
    """Source ID -> destination ID, bounded; the oldest tenth goes when full."""

    def __init__(self, capacity: int) -> None:
        self._map: dict[bytes, bytes] = {}
        self._capacity = max(16, capacity)

    def get(self, src: bytes) -> bytes | None:
        return self._map.get(src)

    def put(self, src: bytes, dst: bytes) -> None:
        self._map[src] = dst
        if len(self._map) > self._capacity:
            drop = self._capacity // 10 or 1
            for key in list(self._map)[:drop]:
                del self._map[key]

    def __len__(self) -> int:
        return len(self._map)


class _Dir:
    """A source tree being rewritten; written once nothing in it is waiting."""

    __slots__ = ("dst_id", "listed", "nodes", "parent", "slot", "src_id", "waiting")

    def __init__(self, src_id: bytes, nodes: list[Node], parent: _Dir | None, slot: int) -> None:
        self.src_id = src_id
        self.nodes = nodes
        self.parent = parent
        self.slot = slot
        self.waiting = 0  # content slots and subtrees not yet resolved
        self.listed = False  # every node has been looked at
        self.dst_id = b""


@dataclass
class _Frame:
    dir: _Dir
    pairs: dict[bytes, tuple[Node, Node]]  # name -> (reference source node, its destination copy)
    next: int = 0


class Copier:
    """Copies trees from a source to a destination repository."""

    def __init__(
        self, src_trees: TreeSource, src_blobs: BlobReader, dst_trees: TreeReader,
        dst_blobs: BlobWriter, dst_blob_id: BlobId, options: CopyOptions | None = None,
        progress: Progress | None = None, same_ids: bool = False, runner: JobRunner | None = None,
        stats: CopyStats | None = None, cancel: CancelToken | None = None,
    ) -> None:  # fmt: skip
        self._cancel = (cancel or CancelToken()).watch()
        self._same_ids = same_ids  # both sides share the ID key: IDs are kept
        self._src_trees = src_trees
        self._src_blobs = src_blobs
        self._dst_trees = dst_trees
        self._dst_blobs = dst_blobs
        self._dst_id = dst_blob_id
        self.options = options or CopyOptions()
        self._progress = progress or NullProgress()
        self.cache = IdCache(self.options.cache_entries)
        self.stats = stats or CopyStats()
        self._runner = runner
        self._copy_pack = PackCopier(src_blobs, dst_blobs, None if same_ids else dst_blob_id, self.stats,
                                     self._progress)  # fmt: skip
        # data blobs being fetched while the walk goes on (main thread only)
        self._waiting: dict[bytes, list[tuple[_Dir, int, int]]] = {}  # source ID -> its slots
        self._queued: list[bytes] = []  # in _waiting, not yet handed to a worker
        self._jobs: set[Future[list[tuple[bytes, bytes]]]] = set()
        self._done: queue.SimpleQueue[Future[list[tuple[bytes, bytes]]]] = queue.SimpleQueue()
        self._submit_job: Callable[..., Future[Pairs]] | None = None  # a thread pool's or the runner's
        self._trees = TreeBatch(src_trees.load_trees, src_trees.load_tree)

    # -- public -------------------------------------------------------------
    def copy_tree(self, root: bytes, reference: tuple[bytes, bytes] | None = None) -> bytes:
        """Rewrite source tree ``root`` (and everything below) into the destination.

        ``reference`` is (source tree, destination tree) of an earlier copy of
        the same kind of tree. Returns the destination tree ID. Data and trees go
        through the destination's blob writer; the caller flushes it.
        """
        known = self._resolved(root, self.cache.get(root))
        if known is not None:
            return known
        if reference is not None and reference[0] == root and self._dst_blobs.has(reference[1]):
            self.cache.put(root, reference[1])
            return reference[1]
        self._waiting, self._queued, self._done = {}, [], queue.SimpleQueue()
        # Without a reference nearly every tree is descended: let loaded trees announce theirs.
        self._trees = TreeBatch(
            self._src_trees.load_trees, self._src_trees.load_tree, None if reference else _subtrees
        )
        top = self._open(root, reference, None, 0)
        threads = None
        if self._runner is None:
            threads = ThreadPoolExecutor(self.options.workers, thread_name_prefix="copy")
        with rarer_gc(), threads or nullcontext():
            self._submit_job = threads.submit if threads else self._runner.submit  # type: ignore[union-attr]
            try:
                stack = [top]
                while stack:
                    self._cancel.check()  # a safe point: copied packs are flushed by the caller
                    child = self._advance(stack[-1])
                    if child is None:
                        done = stack.pop().dir
                        done.listed = True
                        self._finish_if_ready(done)
                    elif len(stack) > MAX_TREE_DEPTH:  # a crafted chain: refuse, like every walk
                        raise InvalidTree(
                            f"tree {child.dir.src_id.hex()[:16]} is deeper than {MAX_TREE_DEPTH} levels"
                        )
                    else:
                        stack.append(child)
                    self._pump()
                while self._queued or self._jobs:  # finished trees may queue their own copy
                    self._cancel.check()
                    self._submit()
                    self._collect(block=True)
            finally:
                for job in self._jobs:  # after an error: do not start what is queued
                    job.cancel()
                self._jobs = set()
                self._submit_job = None
        if not top.dir.dst_id:
            raise AmberError("internal error: copied tree was not completed")
        return top.dir.dst_id

    # -- walking ----------------------------------------------------------------
    def _resolved(self, src: bytes, dst: bytes | None) -> bytes | None:
        if dst is not None and self._dst_blobs.has(dst):
            self.stats.reused += 1  # main thread only; workers count other fields
            return dst
        return None

    def _open(
        self, src_id: bytes, reference: tuple[bytes, bytes] | None, parent: _Dir | None, slot: int
    ) -> _Frame:
        tree = self._trees.get(src_id)
        pairs: dict[bytes, tuple[Node, Node]] = {}
        if reference is not None:
            pairs = self._pair(reference)
        cached = self.cache.get
        self._trees.expect(  # the subtrees _advance will likely descend into, to load them in batches
            src_id,
            (n.subtree for n in tree.nodes
            if n.type == "dir" and n.subtree and cached(n.subtree) is None
            and (n.name not in pairs or pairs[n.name][0].subtree != n.subtree)),
        )  # fmt: skip
        return _Frame(_Dir(src_id, list(tree.nodes), parent, slot), pairs)

    def _pair(self, reference: tuple[bytes, bytes]) -> dict[bytes, tuple[Node, Node]]:
        """Nodes of a reference tree and of its copy, matched by name."""
        try:
            ref_src = self._src_trees.load_tree(reference[0]).nodes
            ref_dst = {n.name: n for n in self._dst_trees.load_tree(reference[1]).nodes}
        except (IntegrityError, ObjectNotFound):
            return {}  # a damaged reference only costs speed
        pairs: dict[bytes, tuple[Node, Node]] = {}
        for node in ref_src:
            twin = ref_dst.get(node.name)
            if twin is not None and twin.type == node.type and len(twin.content) == len(node.content):
                pairs[node.name] = (node, twin)
        return pairs

    def _advance(self, frame: _Frame) -> _Frame | None:
        """Rewrite nodes of ``frame`` until a subdirectory must be descended into."""
        d = frame.dir
        while frame.next < len(d.nodes):
            i = frame.next
            frame.next += 1
            node = d.nodes[i]
            pair = frame.pairs.get(node.name)
            if node.type == "dir" and node.subtree:
                dst = self._resolved(node.subtree, self.cache.get(node.subtree))
                if dst is None and pair is not None and pair[0].subtree == node.subtree:
                    dst = self._resolved(node.subtree, pair[1].subtree or None)
                if dst is not None:
                    if dst != node.subtree:
                        d.nodes[i] = msgspec.structs.replace(node, subtree=dst)
                    continue
                if not self._same_ids:  # its subtree is patched once rewritten
                    d.nodes[i] = msgspec.structs.replace(node)
                d.waiting += 1
                ref = None
                if pair is not None and pair[0].subtree and pair[1].subtree:
                    ref = (pair[0].subtree, pair[1].subtree)
                return self._open(node.subtree, ref, d, i)
            if node.content:
                if self._same_ids:
                    self._fetch_missing(node.content)
                else:
                    d.nodes[i] = msgspec.structs.replace(node, content=self._map_content(d, i, node, pair))
        return None

    def _fetch_missing(self, blob_ids: list[bytes]) -> None:
        """Same-ID mode: queue the blobs the destination lacks; the tree keeps its IDs."""
        has, waiting = self._dst_blobs.has, self._waiting
        for src in blob_ids:
            if src in waiting:
                continue
            if has(src):
                self.stats.reused += 1
                continue
            waiting[src] = []
            self._queued.append(src)

    def _map_content(self, d: _Dir, i: int, node: Node, pair: tuple[Node, Node] | None) -> list[bytes]:
        known: dict[bytes, bytes] = {}
        if pair is not None:
            known = dict(zip(pair[0].content, pair[1].content, strict=True))
        content = list(node.content)
        for j, src in enumerate(content):
            dst = self._resolved(src, known.get(src)) or self._resolved(src, self.cache.get(src))
            if dst is not None:
                content[j] = dst
                continue
            slots = self._waiting.get(src)
            if slots is None:
                self._waiting[src] = [(d, i, j)]
                self._queued.append(src)
            else:
                slots.append((d, i, j))
            d.waiting += 1
        return content

    def _finish_if_ready(self, d: _Dir | None) -> None:
        """Write every tree that has nothing left waiting, walking up to the parents."""
        while d is not None and d.listed and d.waiting == 0 and not d.dst_id:
            self.stats.trees += 1
            if self._same_ids:  # the tree itself is copied as stored, like a data blob
                d.dst_id = d.src_id
                self._fetch_missing([d.src_id])
            else:
                data = encode_tree(Tree(nodes=d.nodes))
                d.dst_id = self._dst_id(data)
                self.stats.trees_added += self._dst_blobs.save(BlobType.TREE, data, d.dst_id)
            self.cache.put(d.src_id, d.dst_id)
            d.nodes = []
            parent = d.parent
            if parent is None:
                return
            if not self._same_ids:
                parent.nodes[d.slot].subtree = d.dst_id
            parent.waiting -= 1
            d = parent

    # -- fetching data --------------------------------------------------------------
    def _pump(self) -> None:
        """Between two steps of the walk: hand out queued blobs, take in finished packs.

        Blobs are handed out in batches (smaller ones while workers are idle);
        the walk pauses while too many blobs are waiting, to bound memory.
        """
        batch = self.options.batch_blobs
        queued = len(self._queued)
        if queued >= batch or (queued and queued >= batch // 16 and len(self._jobs) < self.options.workers):
            self._submit()
        self._collect(block=False)
        while len(self._waiting) > 2 * batch and self._jobs:
            self._collect(block=True)

    def _submit(self) -> None:
        """Give the queued blobs to the workers: one job per source pack."""
        queued, self._queued = self._queued, []
        by_pack: dict[str, list[tuple[bytes, Location]]] = {}
        locate = self._src_blobs.locate
        for src in queued:
            loc = locate(src)
            wanted = by_pack.get(loc.pack)
            if wanted is None:
                by_pack[loc.pack] = [(src, loc)]
            else:
                wanted.append((src, loc))
        assert self._submit_job is not None
        for pack, wanted in by_pack.items():
            job = self._submit_job(self._copy_pack, pack, wanted)
            self._jobs.add(job)
            job.add_done_callback(self._done.put)

    def _collect(self, block: bool) -> None:
        """Patch the slots of finished jobs (waiting for one if ``block``)."""
        while self._jobs and (block or not self._done.empty()):
            job = self._done.get()
            block = False
            self._jobs.discard(job)
            waiting, put = self._waiting, self.cache.put
            if self._same_ids:  # nothing waits on a fetch, and the index answers for its ID
                for src, _ in job.result():
                    del waiting[src]
                continue
            for src, dst in job.result():
                for d, i, j in waiting.pop(src):
                    d.nodes[i].content[j] = dst
                    d.waiting -= 1
                    if not d.waiting:
                        self._finish_if_ready(d)
                put(src, dst)
