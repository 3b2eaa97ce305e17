"""Keeping the catalog in step with the repository's snapshot list.

:func:`sync` reconciles: snapshots the repository has and the catalog lacks are
ingested, in order, one transaction each; snapshots the catalog has and the
repository lost are dropped. A new snapshot is ingested as the difference between
its tree and the tree of its lineage's last ingested snapshot, skipping every subtree
whose ID is the same at the same path, so the work scales with what changed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field

from amber.catalog.store import mark_checked, transaction
from amber.catalog.versions import extension, kind_code, lineage_key, name_form, order_key, same_version
from amber.engine.treewalk import Walker
from amber.errors import AmberError, CatalogError, InvalidTree
from amber.repository import Node, Repository, Snapshot, Tree
from amber.repository.model import MAX_PATH, MAX_TREE_DEPTH

ROOT_DIR = 0

TreeLoader = Callable[[bytes], Tree]


@dataclass
class SyncResult:
    ingested: int = 0
    dropped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (snapshot id, why)


class _Ids:
    """Name and directory IDs, cached for the length of one sync."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.names: dict[bytes, int] = {}
        self.dirs: dict[tuple[int, int], int] = {}

    def name(self, raw: bytes) -> int:
        nid = self.names.get(raw)
        if nid is None:
            row = self.conn.execute("SELECT nid FROM name WHERE raw = ?", (raw,)).fetchone()
            if row is None:
                cur = self.conn.execute(
                    "INSERT INTO name(raw, ext, form) VALUES (?, ?, ?)",
                    (raw, extension(raw), name_form(raw)),
                )
                row = (cur.lastrowid,)
            nid = int(row[0])
            self.names[raw] = nid
        return nid

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


def _nodes(walker: Walker, tree_id: bytes) -> dict[bytes, Node]:
    nodes = walker.nodes(b"", tree_id) if tree_id else []
    return {n.name: n for n in nodes or ()}


def ingest_tree_diff(
    conn: sqlite3.Connection, ids: _Ids, load_tree: TreeLoader, lid: int,
    old_root: bytes, old_seq: int, new_root: bytes, new_seq: int,
) -> None:  # fmt: skip
    """Close the versions that ended at ``old_seq`` and open those that start at ``new_seq``.

    Bounded like every walk (design §9): a tree past its limits (repeated subtrees,
    depth, path length) raises InvalidTree, so the snapshot is not ingested and
    searches walk its trees, which report the problem.
    """
    walker = Walker(load_tree, None)  # no error sink: the first problem raises
    # (directory, old tree, new tree, depth, path length)
    stack: list[tuple[int, bytes, bytes, int, int]] = [(ROOT_DIR, old_root, new_root, 0, 0)]
    while stack:
        did, old_tree, new_tree, depth, length = stack.pop()
        if old_tree == new_tree:
            continue
        if depth > MAX_TREE_DEPTH:
            raise InvalidTree(f"tree {new_tree.hex()[:16]} is deeper than {MAX_TREE_DEPTH} levels")
        old, new = _nodes(walker, old_tree), _nodes(walker, new_tree)
        for name in old.keys() | new.keys():
            a, b = old.get(name), new.get(name)
            sub_length = length + 1 + len(name)
            if sub_length > MAX_PATH:
                raise InvalidTree(f"tree {new_tree.hex()[:16]}: a path is longer than {MAX_PATH} bytes")
            nid = ids.name(name)
            if a is not None and b is not None and same_version(a, b):
                if a.type == "dir" and a.subtree != b.subtree:
                    stack.append((ids.dir(did, nid), a.subtree, b.subtree, depth + 1, sub_length))
                continue
            if a is not None:
                conn.execute(
                    "UPDATE ver SET last_seq = ? WHERE nid = ? AND did = ? AND lid = ? AND last_seq IS NULL",
                    (old_seq, nid, did, lid),
                )
            if b is not None:
                conn.execute(
                    "INSERT INTO ver(nid, did, lid, kind, size, mtime, mode, sha256, first_seq)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (nid, did, lid, kind_code(b.type), b.size, b.mtime_ns, b.mode, b.sha256, new_seq),
                )
            old_sub = a.subtree if a is not None and a.type == "dir" else b""
            new_sub = b.subtree if b is not None and b.type == "dir" else b""
            if old_sub or new_sub:
                stack.append((ids.dir(did, nid), old_sub, new_sub, depth + 1, sub_length))


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


def _append(conn: sqlite3.Connection, ids: _Ids, load_tree: TreeLoader, sid: str, snap: Snapshot) -> None:
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
        for sid, snap in new:
            try:
                with transaction(conn):
                    if conn.execute("SELECT 1 FROM snap WHERE snap_id = ?", (sid,)).fetchone():
                        continue  # another process got here first
                    _append(conn, _Ids(conn), repo.load_tree, sid, snap)
            except AmberError as exc:  # a damaged tree: the catalog lacks it, so searches walk
                result.failed.append((sid, str(exc)))
                continue
            result.ingested += 1
    except sqlite3.Error as exc:
        raise CatalogError(f"catalog: {exc}") from exc
    if result.ingested or result.dropped:
        mark_checked(conn)
    return result
