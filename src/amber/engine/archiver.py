"""The archiver: walks paths and turns them into trees and data blobs.

The walk is iterative (deep trees cannot hit a recursion limit). A helper
process reads the metadata ahead (prewarm.py), so the walk finds it cached
and lists each directory itself; without the helper, scanner threads list
ahead (scanner.py). Parent snapshot trees come in walk-order batches
(parenttrees.py). File contents are read, chunked, hashed, compressed and
encrypted on a thread pool, since hashlib, BLAKE3, zstd, AES-GCM and FastCDC
all release the GIL. A directory's tree is written once its files are done;
trees are finished in post-order, with a bounded backlog (dirfinish.py).

Unchanged data costs little: a file whose lstat matches its node in the
parent snapshot (and whose blobs are all still in the index) reuses that node
object as is, and a directory whose nodes all equal the parent tree's reuses
the parent's tree ID without encoding or hashing it again.

Paths in the walk are the recorded ones (excludes and the parent snapshot use
them); the source (source.py) says where each is read. What is recorded and
entered is walkrule.Rule, shared with the scanner and the prewarm helper.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Protocol

from amber.cancel import CancelToken
from amber.engine import prewarm
from amber.engine.changedpaths import ChangedPaths
from amber.engine.changefacts import ChangeFacts
from amber.engine.chunker import Readable
from amber.engine.dirfinish import DirFinisher, WalkDir, count_new_content
from amber.engine.filereader import BlobSaver, ContentReader, FileContent
from amber.engine.metadata import (
    group_name,
    keep_identity,
    make_node,
    node_type,
    same_file_node,
    unchanged_content,
    user_name,
)
from amber.engine.parenttrees import ParentTrees
from amber.engine.patterns import PathMatcher
from amber.engine.progress import NullProgress, Progress, is_silent
from amber.engine.scanner import LEAF, DirScanner, Listing, path_trie, stat_names, subdirs_to_enter
from amber.engine.smallfiles import BATCH_BYTES, BATCH_FILES, SMALL_FILE, BatchItem, read_batch
from amber.engine.source import LiveSource, Source
from amber.engine.walkrule import Rule
from amber.repository import Node, Summary, Tree

SCANNER_THREADS = 4  # listing threads when no prewarm helper runs


class TreeStore(Protocol):
    def save_tree(self, tree: Tree) -> tuple[bytes, bool]: ...

    def load_tree(self, tree_id: bytes) -> Tree: ...

    def load_trees(self, tree_ids: Sequence[bytes]) -> list[Tree | None]: ...


@dataclass
class ArchiveOptions:
    excludes: PathMatcher = field(default_factory=lambda: PathMatcher([]))
    one_file_system: bool = False
    workers: int = max(2, os.cpu_count() or 2)  # threads beyond the cores only add GIL hand-offs
    prewarm: bool = True  # walk the metadata ahead in a helper process (see engine/prewarm.py)
    source: Source = field(default_factory=LiveSource)  # where recorded paths are read
    changes: ChangedPaths | None = None  # a watcher's marks: walk only these (engine/changedpaths.py)


@dataclass
class ArchiveResult:
    tree: bytes
    summary: Summary
    skipped: list[str] = field(default_factory=list)
    changed_during_read: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files_read: int = 0  # files whose content was read (hard links to one file count once)
    facts: ChangeFacts = field(default_factory=ChangeFacts)  # changes against the parent
    why_skipped: dict[str, str] = field(default_factory=dict)  # skipped path -> reason


def _fsdecode(path: bytes) -> str:
    return os.fsdecode(path)


class Archiver:
    def __init__(
        self,
        saver: BlobSaver,
        trees: TreeStore,
        reader: ContentReader,
        options: ArchiveOptions | None = None,
        progress: Progress | None = None,
        cancel: CancelToken | None = None,
    ) -> None:
        self._saver = saver
        self._cancel = (cancel or CancelToken()).watch()
        self._trees = trees
        self._reader = reader
        self._opts = options or ArchiveOptions()
        self._progress = progress or NullProgress()
        self._summary = Summary()
        self._skipped: list[str] = []
        self._why_skipped: dict[str, str] = {}
        self._changed: list[str] = []
        self._notes: list[str] = []
        self._slots = threading.BoundedSemaphore(self._opts.workers * 32)
        self._hardlinks: dict[tuple[int, int], Future[FileContent]] = {}
        self._facts = ChangeFacts()
        self._finisher = DirFinisher(
            trees, saver.has, self._summary, self._progress, self._skip, self._changed, self._facts
        )
        self._files_read = 0
        self._read = self._opts.source.read_path
        self._rule = Rule(self._opts.excludes.test(self._read), self._opts.one_file_system)
        self._stable_ids = self._opts.source.stable_ids
        self._subdirs = subdirs_to_enter(self._rule)
        self._scanner = self._new_scanner(0)  # see archive()

    # -- public -------------------------------------------------------------
    def archive(self, paths: list[bytes], parent_tree: bytes | None) -> ArchiveResult:
        started = time.monotonic()
        self._facts.has_parent = bool(parent_tree)
        trie = path_trie(paths)
        helper = None
        few = self._opts.changes is not None  # a watcher's few marks: nothing worth listing ahead
        if self._opts.prewarm and not few:
            mounts = self._opts.source.mounts
            helper = prewarm.start(paths, self._opts.excludes, self._opts.one_file_system, mounts=mounts)
        # With the helper reading metadata ahead, listing in line beats scanner threads:
        # their GIL hand-offs cost more than the (then cached) lstat calls.
        inline = few or (helper is not None and helper.running)
        self._scanner = self._new_scanner(0 if inline else SCANNER_THREADS)
        try:
            with ThreadPoolExecutor(self._opts.workers, thread_name_prefix="archiver") as pool:
                whole = trie is LEAF
                parent = parent_tree or b""
                dev = os.lstat(self._read(b"/")).st_dev if whole else None
                listing = self._list(b"/", parent, dev) if whole else self._prefix(b"", trie, parent)
                root = WalkDir(
                    path=b"",
                    entries=listing.entries,
                    only=None if whole else trie,
                    previous=listing.by_name,
                    node=None,
                    dev=dev,
                    prev_id=parent if listing.loaded else b"",
                    prev_nodes=listing.previous,
                )
                tree_id = self._walk(root, pool)
        finally:
            self._scanner.close()
            if helper is not None:
                helper.stop()
        return self._result(tree_id, started)

    def archive_stream(self, name: bytes, stream: Readable | IO[bytes]) -> ArchiveResult:
        started = time.monotonic()
        content = self._reader.read_stream(stream)
        now = time.time_ns()
        uid, gid = os.getuid(), os.getgid()
        node = Node(
            name=name, type="file", mode=0o644, uid=uid, gid=gid, user=user_name(uid),
            group=group_name(gid), mtime_ns=now, atime_ns=now, ctime_ns=now,
            size=content.size, content=content.content, sha256=content.sha256,
        )  # fmt: skip
        count_new_content(self._summary, content)
        self._summary.files_new = self._summary.total_files = 1
        self._summary.total_bytes = content.size
        tree_id, new = self._trees.save_tree(Tree(nodes=[node]))
        self._summary.tree_blobs_added += int(new)
        return self._result(tree_id, started)

    # -- walking ------------------------------------------------------------
    def _result(self, tree_id: bytes, started: float) -> ArchiveResult:
        summary, facts = self._summary, self._facts
        summary.duration_s = round(time.monotonic() - started, 3)
        facts.files_before = summary.files_unmodified + summary.files_changed + facts.files_deleted
        return ArchiveResult(
            tree_id, summary, self._skipped, self._changed, self._notes, self._files_read, facts,
            self._why_skipped,
        )  # fmt: skip

    def _new_scanner(self, threads: int) -> DirScanner:
        return DirScanner(ParentTrees(self._load_trees), self._subdirs, threads=threads, read_path=self._read)

    def _load_trees(self, tree_ids: Sequence[bytes]) -> list[list[Node] | None]:
        """Nodes of parent snapshot trees, None where unreadable; runs on scanner threads."""
        try:
            return [t.nodes if t is not None else None for t in self._trees.load_trees(tree_ids)]
        except Exception:  # a damaged parent only costs re-reading files
            return [None] * len(tree_ids)

    def _prefix(self, path: bytes, only: dict[bytes, object], previous: bytes) -> Listing:
        """A directory above the backup paths: only the named entries."""
        return Listing(
            stat_names(path, sorted(only), self._read),  # each may be a mounted root: map each
            None,
            self._load_trees([previous])[0] if previous else None,
        )

    def _skip(self, path: bytes, why: str) -> None:
        self._skipped.append(_fsdecode(path))
        self._why_skipped[_fsdecode(path)] = why
        self._progress.error(path, why)

    def _list(self, path: bytes, previous: bytes, dev: int | None) -> Listing:
        """A directory's listing and parent tree; the scanner lists its subdirectories ahead."""
        listing = self._scanner.listing(path, previous, dev)
        if listing.error is not None:
            self._skip(path, f"cannot list directory: {listing.error.strerror}")
        return listing

    def _walk(self, root: WalkDir, pool: ThreadPoolExecutor) -> bytes:
        stack = [root]
        while stack:
            self._cancel.check()  # a safe point: what was stored stays stored
            d = stack[-1]
            if d.pos >= len(d.entries):
                self._submit_batch(d, pool)
                stack.pop()
                self._finisher.add(d)  # finished in post-order as its reads complete
                continue
            if d.previous and d.only is None and self._stable_ids:
                self._reuse_unchanged_files(d)
                if d.pos >= len(d.entries):
                    continue
            name, st = d.entries[d.pos]
            d.pos += 1
            child = self._visit(d, name, st, pool)
            if child is not None:
                stack.append(child)
        return self._finisher.finish_all()

    def _visit(
        self, d: WalkDir, name: bytes, st: os.stat_result | OSError, pool: ThreadPoolExecutor
    ) -> WalkDir | None:
        path = d.path + b"/" + name
        only = d.only.get(name) if d.only is not None else None
        is_prefix = d.only is not None and only is not LEAF
        if not is_prefix and self._rule.skips(path, name):
            return None
        prev = d.previous.get(name)
        if (
            prev is not None
            and self._stable_ids
            and st.__class__ is os.stat_result
            and prev.ctime_ns == st.st_ctime_ns  # type: ignore[union-attr]
            and same_file_node(prev, st)  # type: ignore[arg-type]
            and unchanged_content(prev, st, self._saver.has)  # type: ignore[arg-type]
            and not is_prefix
        ):
            d.nodes.append(prev)  # shared with the parent tree: never mutated
            self._count_unchanged(path, prev.size)
            return None
        try:
            if isinstance(st, OSError):
                raise st
            kind = node_type(st.st_mode)
            if kind is None:
                self._notes.append(f"skipped socket or special file {_fsdecode(path)}")
                self._progress.error(path, "socket skipped")
                return None
            if is_prefix and kind != "dir":
                return None  # a parent of a backup path must be a directory
            if self._stable_ids:
                node = make_node(name, self._read(path), st, kind, prev)
            else:  # no ctime shortcut: lstat and xattrs anew, then the parent's identity if all matches
                node = keep_identity(make_node(name, self._read(path), st, kind), prev)
        except FileNotFoundError:
            self._skip(path, "vanished before it could be read")
            return None
        except OSError as exc:
            self._skip(path, exc.strerror or str(exc))
            return None
        d.nodes.append(node)
        if kind == "file":
            self._add_file(d, node, prev, path, st, pool)
        elif kind == "dir":
            self._summary.dirs += 1
            dev = st.st_dev if (d.dev is None or only is LEAF) else d.dev
            if not is_prefix and self._rule.stays_out(st, dev):
                self._notes.append(f"not crossing into filesystem at {_fsdecode(path)}")
                return WalkDir(path, [], {}, {}, node, dev)
            changes = self._opts.changes
            if changes is not None and not is_prefix and changes.reuse_subtree(
                path, node, prev, self._saver.has, self._trees.load_trees, self._summary
            ):  # fmt: skip
                return None
            prev_id = prev.subtree if prev is not None and prev.type == "dir" else b""
            if is_prefix:
                assert isinstance(only, dict)
                listing, restrict = self._prefix(path, only, prev_id), only
            else:
                listing, restrict = self._list(path, prev_id, dev), None
            return WalkDir(path, listing.entries, restrict, listing.by_name, node, dev,
                        prev_id=prev_id if listing.loaded else b"", prev_nodes=listing.previous)  # fmt: skip
        return None

    def _reuse_unchanged_files(self, d: WalkDir) -> None:
        """Take the run of unchanged files at ``d.pos`` as they are.

        The same rule as in ``_visit``, in a tight loop: in an unchanged
        re-backup this is nearly every entry.
        """
        entries, previous, nodes = d.entries, d.previous, d.nodes
        has = self._saver.has
        skips = self._rule.skips if self._rule.excluded is not None else None
        stat_result = os.stat_result
        quiet = is_silent(self._progress)  # no per-file progress calls needed (asked per run: may change)
        pos = start = d.pos
        total = 0
        while pos < len(entries):
            name, st = entries[pos]
            prev = previous.get(name)
            if (
                prev is None
                or st.__class__ is not stat_result
                or prev.ctime_ns != st.st_ctime_ns  # type: ignore[union-attr]
                or not same_file_node(prev, st)  # type: ignore[arg-type]
                or not unchanged_content(prev, st, has)  # type: ignore[arg-type]
                or (skips is not None and skips(d.path + b"/" + name, name))
            ):
                break
            nodes.append(prev)  # shared with the parent tree: never mutated
            total += prev.size
            if not quiet:
                self._count_unchanged(d.path + b"/" + name, prev.size)
            pos += 1
        if quiet and pos > start:
            summary = self._summary
            summary.total_files += pos - start
            summary.files_unmodified += pos - start
            summary.total_bytes += total
        d.pos = pos

    def _count_unchanged(self, path: bytes, size: int) -> None:
        summary = self._summary
        summary.total_files += 1
        summary.total_bytes += size
        summary.files_unmodified += 1
        self._progress.file_done(path, size, "unchanged")
        self._progress.bytes_done(size)

    def _add_file(
        self, d: WalkDir, node: Node, prev: Node | None, path: bytes, st: os.stat_result,
        pool: ThreadPoolExecutor,
    ) -> None:  # fmt: skip
        self._summary.total_files += 1
        self._summary.total_bytes += st.st_size
        if unchanged_content(prev, st, self._saver.has, self._stable_ids):
            assert prev is not None
            node.content, node.sha256, node.entropy = prev.content, prev.sha256, prev.entropy
            self._summary.files_unmodified += 1
            self._progress.file_done(path, st.st_size, "unchanged")
            self._progress.bytes_done(st.st_size)
            return
        if st.st_size < SMALL_FILE and st.st_nlink == 1:
            if d.batch_future is None:
                d.batch_future = Future()
            d.pending.append((node, BatchItem(d.batch_future, len(d.batch)), prev))
            d.batch.append((self._read(path), st))
            self._files_read += 1
            d.batch_bytes += st.st_size
            if len(d.batch) >= BATCH_FILES or d.batch_bytes >= BATCH_BYTES:
                self._submit_batch(d, pool)
            return
        link_key = (st.st_dev, st.st_ino)
        fut = self._hardlinks.get(link_key) if st.st_nlink > 1 else None
        if fut is None:
            self._slots.acquire()
            fut = pool.submit(self._reader.read_file, self._read(path), st)
            self._files_read += 1
            fut.add_done_callback(lambda _f: self._slots.release())
            if st.st_nlink > 1:
                self._hardlinks[link_key] = fut
        d.pending.append((node, fut, prev))

    def _submit_batch(self, d: WalkDir, pool: ThreadPoolExecutor) -> None:
        if not d.batch:
            return
        items, future = d.batch, d.batch_future
        assert future is not None
        d.batch, d.batch_bytes, d.batch_future = [], 0, None
        self._slots.acquire()
        job = pool.submit(read_batch, self._reader, items, future)
        job.add_done_callback(lambda _f: self._slots.release())
