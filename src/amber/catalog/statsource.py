"""Figures for `amber stats`: SQL over the catalog's versions, or a walk of the snapshot's trees.

Both feed the pure rules of :mod:`amber.catalog.stats`; a test checks they agree.
The catalog answers with ``GROUP BY`` over the versions a snapshot holds (a
version is in snapshot ``seq`` of its lineage when ``first_seq <= seq <= last_seq``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence

from amber.catalog.ingest import ROOT_DIR
from amber.catalog.search import synced_catalog
from amber.catalog.stats import (
    AGE_BUCKETS,
    NO_EXTENSION,
    SIZE_BUCKETS,
    FileEntry,
    Growth,
    SnapshotStats,
    bucket_sql,
    dir_group,
    fold,
    growth,
    largest,
    ordered_groups,
    time_ns,
)
from amber.catalog.versions import KIND_CODE, kind_name, lineage_key
from amber.engine.treewalk import walk
from amber.errors import AmberError
from amber.repository import Repository, Snapshot
from amber.repository.model import parse_time
from amber.services.snapshots import SnapshotFilter, resolve

Notice = Callable[[str], None]
_IN_SNAPSHOT = "v.lid = :lid AND v.first_seq <= :seq AND (v.last_seq IS NULL OR v.last_seq >= :seq)"


def roots(paths: Sequence[str]) -> list[bytes]:
    return [p.encode("utf-8", "surrogateescape") for p in paths]


def walk_stats(repo: Repository, sid: str, snap: Snapshot, by: str, top: int) -> SnapshotStats:
    stats = SnapshotStats(sid, snap.time, by)
    entries: list[FileEntry] = []
    for path, node in walk(repo.load_tree, snap.tree):
        if node.type == "file":
            entries.append(FileEntry(path, node.size, node.mtime_ns))
        elif node.type == "dir":
            stats.dirs += 1
        elif node.type == "symlink":
            stats.symlinks += 1
        else:
            stats.other += 1
    stats.files = len(entries)
    stats.size = sum(e.size for e in entries)
    stats.groups = ordered_groups(by, fold(by, entries, time_ns(snap.datetime), roots(snap.paths)))
    stats.largest = largest(((e.path, e.size) for e in entries), top)
    return stats


def _walk_previous(repo: Repository, sid: str, snap: Snapshot) -> tuple[str, Snapshot] | None:
    """The snapshot of the same host and paths just before this one (by time, then ID)."""
    same = [
        (other_id, other) for other_id, other in repo.snapshots([]).items()
        if lineage_key(other) == lineage_key(snap)
        and (other.datetime, other_id) < (snap.datetime, sid)
    ]  # fmt: skip
    return max(same, key=lambda item: (item[1].datetime, item[0])) if same else None


class _DirPaths:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.paths: dict[int, bytes] = {ROOT_DIR: b""}

    def __call__(self, did: int) -> bytes:
        chain: list[tuple[int, bytes]] = []
        while did not in self.paths:
            parent, raw = self.conn.execute(
                "SELECT d.parent, n.raw FROM dir d JOIN name n ON n.nid = d.nid WHERE d.did = ?", (did,)
            ).fetchone()
            chain.append((did, bytes(raw)))
            did = int(parent)
        path = self.paths[did]
        for child, raw in reversed(chain):
            path = self.paths[child] = path + b"/" + raw
        return path


def catalog_stats(conn: sqlite3.Connection, sid: str, by: str, top: int) -> SnapshotStats | None:
    """None when the catalog does not hold the snapshot."""
    row = conn.execute(
        "SELECT s.lid, s.seq, s.time_text, l.paths FROM snap s JOIN lineage l USING (lid)"
        " WHERE s.snap_id = ?",
        (sid,),
    ).fetchone()
    if row is None:
        return None
    lid, seq, time_text, paths = row
    at = {"lid": lid, "seq": seq, "snap_ns": time_ns(parse_time(time_text))}
    stats = SnapshotStats(sid, time_text, by)
    for code, count, size in conn.execute(
        f"SELECT v.kind, count(*), sum(v.size) FROM ver v WHERE {_IN_SNAPSHOT} GROUP BY v.kind", at
    ):
        kind = kind_name(code)
        if kind == "file":
            stats.files, stats.size = int(count), int(size)
        elif kind == "dir":
            stats.dirs = int(count)
        elif kind == "symlink":
            stats.symlinks = int(count)
        else:
            stats.other += int(count)
    is_file = f"v.kind = {KIND_CODE['file']}"
    files = f"FROM ver v WHERE {_IN_SNAPSHOT} AND {is_file}"
    named_files = f"FROM ver v JOIN name n ON n.nid = v.nid WHERE {_IN_SNAPSHOT} AND {is_file}"
    counts: dict[str, tuple[int, int]] = {}
    if by == "type":
        sql = f"SELECT n.ext, count(*), sum(v.size) {named_files} GROUP BY n.ext"
        counts = {ext or NO_EXTENSION: (int(c), int(s)) for ext, c, s in conn.execute(sql, at)}
    elif by in ("size", "age"):
        table = SIZE_BUCKETS if by == "size" else AGE_BUCKETS
        value = "v.size" if by == "size" else "(:snap_ns - v.mtime)"
        sql = f"SELECT {bucket_sql(value, table)} AS b, count(*), sum(v.size) {files} GROUP BY b"
        counts = {table[b][1]: (int(c), int(s)) for b, c, s in conn.execute(sql, at)}
    else:
        dir_path = _DirPaths(conn)
        top_roots = roots(json.loads(paths))
        sql = f"SELECT v.did, count(*), sum(v.size) {files} GROUP BY v.did"
        for did, c, s in conn.execute(sql, at).fetchall():
            key = dir_group(dir_path(int(did)), top_roots).decode("utf-8", "backslashreplace")
            f0, b0 = counts.get(key, (0, 0))
            counts[key] = (f0 + int(c), b0 + int(s))
    stats.groups = ordered_groups(by, counts)
    # every file at least as large as the top-th largest (ties are broken by path)
    threshold = conn.execute(
        f"SELECT v.size {files} ORDER BY v.size DESC LIMIT 1 OFFSET :skip", {**at, "skip": max(top - 1, 0)}
    ).fetchone()
    dir_paths = _DirPaths(conn)
    candidates = conn.execute(
        f"SELECT v.did, n.raw, v.size {named_files} AND v.size >= :floor",
        {**at, "floor": threshold[0] if threshold else 0},
    ).fetchall()
    stats.largest = largest(
        ((dir_paths(int(did)) + b"/" + bytes(raw), int(size)) for did, raw, size in candidates), top
    )
    return stats


def _catalog_previous(conn: sqlite3.Connection, sid: str) -> str | None:
    row = conn.execute(
        "SELECT p.snap_id FROM snap s JOIN snap p"
        " ON p.lid = s.lid AND (p.time, p.snap_id) < (s.time, s.snap_id)"
        " WHERE s.snap_id = ? ORDER BY p.time DESC, p.snap_id DESC LIMIT 1",
        (sid,),
    ).fetchone()
    return None if row is None else str(row[0])


def snapshot_stats(
    repo: Repository, ref: str, flt: SnapshotFilter, by: str, top: int, use_catalog: bool, notice: Notice
) -> tuple[SnapshotStats, Growth | None]:
    """The figures for one snapshot and the growth since the previous one of its host and paths."""
    sid, snap = resolve(repo, ref, flt)
    conn = synced_catalog(repo, notice) if use_catalog else None
    if conn is not None:
        try:
            conn.execute("BEGIN")  # one consistent read while other processes ingest
            current = catalog_stats(conn, sid, by, top)
            if current is not None:
                previous_id = _catalog_previous(conn, sid)
                previous = catalog_stats(conn, previous_id, by, top) if previous_id else None
                conn.execute("COMMIT")
                return current, growth(current, previous) if previous else None
            conn.execute("COMMIT")
        except (sqlite3.Error, AmberError) as exc:
            notice(f"catalog: {exc}; walking the trees instead")
        finally:
            conn.close()
    current = walk_stats(repo, sid, snap, by, top)
    before = _walk_previous(repo, sid, snap)
    if before is None:
        return current, None
    return current, growth(current, walk_stats(repo, before[0], before[1], by, top))
