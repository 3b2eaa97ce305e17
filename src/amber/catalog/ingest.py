"""Keeping the catalog in step with the repository's snapshot list.

:func:`sync` reconciles: snapshots the repository has and the catalog lacks are
ingested, in order, one transaction each; snapshots the catalog has and the
repository lost are dropped. A new snapshot is ingested as the difference between
its tree and the tree of its lineage's last ingested snapshot, skipping every subtree
whose ID is the same at the same path, so the work scales with what changed.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import cast

from amber.catalog.store import mark_checked, name_hash, transaction
from amber.catalog.treecache import TreeCache
from amber.catalog.versions import (
    extension,
    fold_text,
    kind_code,
    lineage_key,
    name_form,
    order_key,
    same_version,
)
from amber.engine.treewalk import Walker
from amber.errors import AmberError, CatalogError, InvalidTree
from amber.repository import Node, Repository, Snapshot, Tree
from amber.repository.model import MAX_PATH, MAX_TREE_DEPTH
from amber.repository.rawtree import RawTree, decode_node, decode_raw_tree

ROOT_DIR = 0


@dataclass
class SyncResult:
    ingested: int = 0
    dropped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (snapshot id, why)


_LOOKUP_CHUNK = 500  # names per SELECT ... IN (...), under SQLite's parameter limit
_FLUSH_ROWS = 20_000  # version rows kept in memory before they are written
_SETTLE_NAMES = 4_000  # names of diffed directories looked up together
_COMPACT_AFTER = 10_000  # rows written by a first sync worth one VACUUM


class _Ids:
    """Name and directory IDs, cached for the length of one sync.

    Rows are never deleted from ``name`` and ``dir``, so what the cache holds stays
    true across transactions, except after a rollback (:meth:`reset`). New names get
    IDs from here (one past the largest, read when a transaction begins: the writer
    lock is held), so they go in with one ``executemany``.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.names: dict[bytes, int] = {}
        self.dirs: dict[tuple[int, int], int] = {}
        self._next_nid = 0

    def begin(self) -> None:
        """Call inside each transaction, before the first new name."""
        self._next_nid = int(self.conn.execute("SELECT coalesce(max(nid), 0) + 1 FROM name").fetchone()[0])

    def reset(self) -> None:
        """After a rollback: what the transaction added is gone."""
        self.names.clear()
        self.dirs.clear()

    def need(self, raws: list[bytes]) -> None:
        """Make sure every name in ``raws`` has an ID in :attr:`names` (adding rows as needed)."""
        names = self.names
        missing = {raw: extension(raw) for raw in raws if raw not in names}
        if not missing:
            return
        # Looked up through name_key (extension, hash), one extension at a time.
        by_ext: dict[str, set[int]] = {}
        for raw, ext in missing.items():
            by_ext.setdefault(ext, set()).add(name_hash(raw))
        for ext, hash_set in by_ext.items():
            hashes = list(hash_set)
            for i in range(0, len(hashes), _LOOKUP_CHUNK):
                chunk = hashes[i : i + _LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT raw, nid FROM name WHERE ext = ? AND amber_name_hash(raw) IN ({marks})"
                for raw, nid in self.conn.execute(sql, (ext, *chunk)):
                    if (raw := bytes(raw)) in missing:  # not another name with the same hash
                        names[raw] = int(nid)
        new = [raw for raw in missing if raw not in names]
        if not new:
            return
        first = self._next_nid
        self._next_nid += len(new)
        names.update(zip(new, range(first, self._next_nid), strict=True))
        self.conn.executemany(
            "INSERT INTO name(nid, raw, ext, form) VALUES (?, ?, ?, ?)",
            [(nid, raw, missing[raw], name_form(raw)) for nid, raw in enumerate(new, first)],
        )
        # The trigram index, filled here rather than by a trigger (an FTS5 insert per
        # trigger call cost ~40 us a name, in one executemany ~3 us).
        self.conn.executemany(
            "INSERT INTO name_tri(rowid, fold) VALUES (?, ?)",
            [(nid, fold_text(raw)) for nid, raw in enumerate(new, first)],
        )

    def dir(self, parent: int, nid: int) -> int:
        did = self.dirs.get((parent, nid))
        if did is None:
            row = self.conn.execute(
                "SELECT did FROM dir WHERE parent = ? AND nid = ?", (parent, nid)
            ).fetchone()
            if row is None:
                row = (
                    self.conn.execute("INSERT INTO dir(parent, nid) VALUES (?, ?)", (parent, nid)).lastrowid,
                )
            did = int(row[0])
            self.dirs[(parent, nid)] = did
        return did


class _Rows:
    """The version rows one snapshot's diff closes and opens, written in batches.

    Each (name, directory) is met once per diff, so a batch's closes never touch
    another batch's opens; within a batch the closes go first, since a close matches
    the open row of its place (``last_seq IS NULL``).
    """

    def __init__(self, conn: sqlite3.Connection, lid: int, old_seq: int, new_seq: int) -> None:
        self.conn, self.lid, self.old_seq, self.new_seq = conn, lid, old_seq, new_seq
        self.closes: list[tuple[int, int, int, int]] = []
        self.opens: list[tuple[object, ...]] = []

    def add(self, did: int, names: dict[bytes, int], closed: list[bytes], opened: list[Node]) -> None:
        lid, old_seq, new_seq = self.lid, self.old_seq, self.new_seq
        self.closes.extend((old_seq, names[raw], did, lid) for raw in closed)
        self.opens.extend(
            (names[b.name], did, lid, kind_code(b.type), b.size, b.mtime_ns, b.mode, b.sha256, new_seq)
            for b in opened
        )
        if len(self.closes) + len(self.opens) >= _FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.closes:
            self.closes.sort(key=itemgetter(1, 2))
            self.conn.executemany(
                "UPDATE ver SET last_seq = ? WHERE nid = ? AND did = ? AND lid = ? AND last_seq IS NULL",
                self.closes,
            )
        if self.opens:
            self.opens.sort(key=itemgetter(0, 1))  # key order: fewer pages touched
            self.conn.executemany(
                "INSERT INTO ver(nid, did, lid, kind, size, mtime, mode, sha256, first_seq)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                self.opens,
            )
        self.closes, self.opens = [], []


RawLoader = Callable[[bytes], RawTree]
_NO_TREE = RawTree([], [])


class _Listed:
    """A raw tree where the walker looks for a tree's nodes: its bounds only count them."""

    __slots__ = ("nodes",)

    def __init__(self, raw: RawTree) -> None:
        self.nodes = raw


def _raw(walker: Walker, tree_id: bytes) -> RawTree:
    listed = walker.nodes(b"", tree_id) if tree_id else None
    return cast(RawTree, listed) if listed is not None else _NO_TREE


def _changed(tree_id: bytes, tree: RawTree, other: RawTree) -> dict[bytes, Node]:
    """The nodes of ``tree`` whose encoding is not in ``other``, decoded, by name."""
    same = set(other.encoded)
    return {name: decode_node(raw, tree_id) for name, raw in zip(tree.names, tree.encoded, strict=True)
            if raw not in same}  # fmt: skip


def _diff_dir(
    walker: Walker, old_tree: bytes, new_tree: bytes, length: int
) -> tuple[list[bytes], list[Node], list[tuple[bytes, bytes, bytes]]]:
    """One directory's closed names, opened nodes and (name, old subtree, new subtree) to descend."""
    old_raw, new_raw = _raw(walker, old_tree), _raw(walker, new_tree)
    longest = max(map(len, old_raw.names), default=0), max(map(len, new_raw.names), default=0)
    if length + 1 + max(longest) > MAX_PATH:
        raise InvalidTree(f"tree {new_tree.hex()[:16]}: a path is longer than {MAX_PATH} bytes")
    old = _changed(old_tree, old_raw, new_raw)
    closed: list[bytes] = []
    opened: list[Node] = []
    descend: list[tuple[bytes, bytes, bytes]] = []
    for b in _changed(new_tree, new_raw, old_raw).values():
        a = old.pop(b.name, None)
        if a is not None:
            if same_version(a, b):
                if a.type == "dir" and a.subtree != b.subtree:
                    descend.append((b.name, a.subtree, b.subtree))
                continue
            closed.append(a.name)
        opened.append(b)
        old_sub = a.subtree if a is not None and a.type == "dir" else b""
        new_sub = b.subtree if b.type == "dir" else b""
        if old_sub or new_sub:
            descend.append((b.name, old_sub, new_sub))
    for a in old.values():  # gone from the new tree
        closed.append(a.name)
        if a.type == "dir" and a.subtree:
            descend.append((a.name, a.subtree, b""))
    return closed, opened, descend


def ingest_tree_diff(
    conn: sqlite3.Connection, ids: _Ids, load_tree: RawLoader, lid: int,
    old_root: bytes, old_seq: int, new_root: bytes, new_seq: int,
) -> None:  # fmt: skip
    """Close the versions that ended at ``old_seq`` and open those that start at ``new_seq``.

    Bounded like every walk (design §9): a tree past its limits (repeated subtrees,
    depth, path length) raises InvalidTree, so the snapshot is not ingested and
    searches walk its trees, which report the problem. Nodes encoded identically in
    both trees are not decoded: they are the same version.
    """
    walker = Walker(
        lambda tree_id: cast(Tree, _Listed(load_tree(tree_id))), None
    )  # no error sink: the first problem raises
    rows = _Rows(conn, lid, old_seq, new_seq)
    # (directory, old tree, new tree, depth, path length)
    stack: list[tuple[int, bytes, bytes, int, int]] = [(ROOT_DIR, old_root, new_root, 0, 0)]
    # Directories diffed whose names are not looked up yet: names are looked up for many
    # directories at once (fewer statements), then their rows written and subtrees stacked.
    pending: list[tuple[int, list[bytes], list[Node], list[tuple[bytes, bytes, bytes]], int, int]] = []
    pending_names = 0

    def settle() -> None:
        ids.need([raw for _, closed, opened, descend, _, _ in pending
                  for raw in (*closed, *(b.name for b in opened), *(n for n, _, _ in descend))])  # fmt: skip
        for did, closed, opened, descend, depth, length in pending:
            rows.add(did, ids.names, closed, opened)
            for name, old_sub, new_sub in descend:
                stack.append(
                    (ids.dir(did, ids.names[name]), old_sub, new_sub, depth + 1, length + 1 + len(name))
                )
        pending.clear()

    while stack or pending:
        if not stack or pending_names >= _SETTLE_NAMES:
            settle()
            pending_names = 0
            continue
        did, old_tree, new_tree, depth, length = stack.pop()
        if old_tree == new_tree:
            continue
        if depth > MAX_TREE_DEPTH:
            raise InvalidTree(f"tree {new_tree.hex()[:16]} is deeper than {MAX_TREE_DEPTH} levels")
        closed, opened, descend = _diff_dir(walker, old_tree, new_tree, length)
        if closed or opened or descend:
            pending.append((did, closed, opened, descend, depth, length))
            pending_names += len(closed) + len(opened) + len(descend)
    rows.flush()


def _lineage_id(conn: sqlite3.Connection, snap: Snapshot) -> int:
    host, paths = lineage_key(snap)
    row = conn.execute("SELECT lid FROM lineage WHERE host = ? AND paths = ?", (host, paths)).fetchone()
    if row is None:
        row = (conn.execute("INSERT INTO lineage(host, paths) VALUES (?, ?)", (host, paths)).lastrowid,)
    return int(row[0])


def _head(conn: sqlite3.Connection, lid: int) -> tuple[int, bytes] | None:
    """(seq, tree) of the lineage's most recently ingested snapshot."""
    row = conn.execute(
        "SELECT seq, tree FROM snap WHERE lid = ? ORDER BY seq DESC LIMIT 1", (lid,)
    ).fetchone()
    return None if row is None else (int(row[0]), bytes(row[1]))


def _append(conn: sqlite3.Connection, ids: _Ids, load_tree: RawLoader, sid: str, snap: Snapshot) -> None:
    """Ingest one snapshot as its lineage's new head.

    Sequence numbers follow ingestion, not snapshot time: membership only needs each
    version's range to list the snapshots it is in, so a snapshot older than the head
    (copied in late) is appended like any other. Answers are ordered by time later.
    """
    lid = _lineage_id(conn, snap)
    head = _head(conn, lid)
    seq = head[0] + 1 if head else 1
    old_seq, old_root = head if head else (0, b"")
    ingest_tree_diff(conn, ids, load_tree, lid, old_root, old_seq, snap.tree, seq)
    conn.execute(
        "INSERT INTO snap(snap_id, lid, seq, time, time_text, tags, tree) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (sid, lid, seq, order_key(sid, snap)[0], snap.time, json.dumps(sorted(snap.tags)), snap.tree),
    )


def _drop(conn: sqlite3.Connection, snapshot_id: str) -> None:
    """Forget a snapshot the repository no longer has."""
    row = conn.execute("SELECT lid, seq FROM snap WHERE snap_id = ?", (snapshot_id,)).fetchone()
    if row is None:
        return
    lid, seq = int(row[0]), int(row[1])
    conn.execute("DELETE FROM snap WHERE snap_id = ?", (snapshot_id,))
    head = _head(conn, lid)
    if head is not None and head[0] < seq:
        # The head went: what the new head holds is open again (versions closed after it).
        conn.execute("UPDATE ver SET last_seq = NULL WHERE lid = ? AND last_seq >= ?", (lid, head[0]))
    # Versions no remaining snapshot of their lineage lies in.
    conn.execute(
        "DELETE FROM ver WHERE lid = ? AND NOT EXISTS (SELECT 1 FROM snap s WHERE s.lid = ver.lid"
        " AND s.seq >= ver.first_seq AND (ver.last_seq IS NULL OR s.seq <= ver.last_seq))",
        (lid,),
    )


def sync(conn: sqlite3.Connection, repo: Repository) -> SyncResult:
    """Bring the catalog in line with the repository's snapshots."""
    result = SyncResult()
    try:
        wanted = set(repo.snapshot_names())
        have = {r[0] for r in conn.execute("SELECT snap_id FROM snap")}
    except sqlite3.Error as exc:
        raise CatalogError(f"catalog: {exc}") from exc
    gone = sorted(have - wanted)
    new: list[tuple[str, Snapshot]] = []
    for sid in sorted(wanted - have):
        try:
            new.append((sid, repo.load_snapshot(sid)))
        except AmberError as exc:
            result.failed.append((sid, str(exc)))
    new.sort(key=lambda item: order_key(*item))
    try:
        if gone:
            with transaction(conn):
                for sid in gone:
                    _drop(conn, sid)
            result.dropped = len(gone)
        if new:
            repo.ensure_index()
        ids = _Ids(conn)
        changes = conn.total_changes

        def read(tree_id: bytes) -> RawTree:
            return decode_raw_tree(repo.blobs.load(tree_id), tree_id)

        loader = TreeCache(read)

        for sid, snap in new:
            try:
                with transaction(conn):
                    if conn.execute("SELECT 1 FROM snap WHERE snap_id = ?", (sid,)).fetchone():
                        continue  # another process got here first
                    ids.begin()
                    _append(conn, ids, loader, sid, snap)
            except AmberError as exc:  # a damaged tree: the catalog lacks it, so searches walk
                ids.reset()
                result.failed.append((sid, str(exc)))
                continue
            result.ingested += 1
        if not have and conn.total_changes - changes >= _COMPACT_AFTER:
            _compact(conn)
    except sqlite3.Error as exc:
        raise CatalogError(f"catalog: {exc}") from exc
    if result.ingested or result.dropped:
        mark_checked(conn)
    return result


def _compact(conn: sqlite3.Connection) -> None:
    """Rewrite a catalog just built from nothing with full pages.

    Ingest inserts names and versions in tree order, not key order, so the B-trees'
    pages end up part empty; one VACUUM after the first build makes the file ~15%
    smaller (design §24). Only ever a saving: if it cannot run, the file stays as is.
    """
    with contextlib.suppress(sqlite3.OperationalError):
        conn.execute("VACUUM")
