"""Answering `find` and `history` from the catalog, or by walking the trees.

The catalog narrows candidates with SQL (trigram index on base names, the extension
column) and then applies exactly the rule the tree walk applies
(:meth:`FindQuery.matches`), so both paths give the same answer. Any doubt about the
catalog (it could not sync a snapshot, it failed) falls back to the walk.
"""

from __future__ import annotations

import bisect
import functools
import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from amber.catalog import coarse, store
from amber.catalog.ingest import ROOT_DIR, SyncResult, sync
from amber.catalog.query import FindQuery, Hit
from amber.catalog.versions import FORM_ASCII, FORM_BYTES, FORM_UTF8, kind_code, kind_name, order_key
from amber.engine.treewalk import lookup, split_path, walk
from amber.errors import AmberError, CatalogError, NotFound
from amber.repository import Node, Repository, Snapshot
from amber.services.snapshots import SnapshotFilter, select

Notice = Callable[[str], None]
WalkErrorSink = Callable[[str, bytes, AmberError], None]  # (snapshot ID, directory path, error)


@dataclass
class _Snap:
    snapshot_id: str
    seq: int
    order: str
    time_text: str


@dataclass
class _Lineages:
    """The snapshots a query may see, per lineage, ordered by sequence number."""

    by_lid: dict[int, list[_Snap]] = field(default_factory=dict)

    def covering(self, lid: int, first: int, last: int | None) -> list[_Snap]:
        snaps = self.by_lid.get(lid, [])
        seqs = [s.seq for s in snaps]
        lo = bisect.bisect_left(seqs, first)
        hi = len(snaps) if last is None else bisect.bisect_right(seqs, last)
        return snaps[lo:hi]


def _visible(conn: sqlite3.Connection, query: FindQuery) -> _Lineages:
    flt = SnapshotFilter(list(query.hosts), list(query.tags), list(query.paths))
    found = _Lineages()
    rows = conn.execute(
        "SELECT s.snap_id, s.lid, s.seq, s.time, s.time_text, s.tags, l.host, l.paths"
        " FROM snap s JOIN lineage l USING (lid) ORDER BY s.lid, s.seq"
    )
    for sid, lid, seq, order, time_text, tags, host, paths in rows:
        snap = Snapshot(
            time=time_text, tree=b"", paths=json.loads(paths), hostname=host, tags=json.loads(tags)
        )
        if flt.matches(snap) and query.snapshot_in_range(snap.datetime):
            found.by_lid.setdefault(lid, []).append(_Snap(sid, seq, order, time_text))
    return found


def _like(pattern: str) -> str:
    """A LIKE pattern matching at least what the glob matches (exactness is checked later)."""
    like = re.sub(r"\[[^\]]*\]|[*?]", "%", pattern)
    return re.sub("%+", "%", like)


EXT_NAMES_SQL = "SELECT nid FROM name WHERE ext = ?"  # reads the index name_key
_EXT_ONLY = re.compile(r"\*\.([^*?\[\]/.]+)")
_TRIGRAM = re.compile(r"[^*?\[\]%_]{3}")


def _pattern_names(conn: sqlite3.Connection, pattern: str) -> Iterator[int]:
    """A superset of the names ``pattern`` matches, case-sensitive or not.

    Everything is compared case-folded: the trigram index holds each name's folding
    (:func:`fold`), and a literal run of a name folds to a run of the folded name.
    LIKE's own ASCII case-insensitivity only widens the set.
    """
    folded = pattern.casefold()
    ext = _EXT_ONLY.fullmatch(folded)
    if ext:
        yield from (r[0] for r in conn.execute(EXT_NAMES_SQL, (ext.group(1),)))
        # '*' also matches nothing: a dotfile named '.ext' has no extension of its own
        yield from _pattern_names(conn, "." + ext.group(1))
    elif _TRIGRAM.search(re.sub(r"\[[^\]]*\]", "?", folded)):
        rows = conn.execute("SELECT rowid FROM name_tri WHERE fold LIKE ?", (_like(folded),))
        yield from (r[0] for r in rows)
    else:
        # A scan of the distinct names. ASCII names fold to their lower case, which LIKE
        # already ignores, so only the others call back into Python for their folding.
        yield from (r[0] for r in conn.execute(
            f"SELECT nid FROM name WHERE (form = {FORM_ASCII} AND CAST(raw AS TEXT) LIKE :p)"
            f" OR (form = {FORM_UTF8} AND amber_fold(raw) LIKE :p)", {"p": _like(folded)}))  # fmt: skip


def _candidate_names(conn: sqlite3.Connection, query: FindQuery) -> set[int] | None:
    """Name IDs that may match, or None for "every name" (patterns on whole paths)."""
    if query.on_path() or any(p.strip("*") == "" for p in query.patterns):
        return None
    nids: set[int] = set()
    for pattern in query.patterns:
        nids.update(_pattern_names(conn, pattern))
    nids.update(r[0] for r in conn.execute(f"SELECT nid FROM name WHERE form = {FORM_BYTES}"))
    return nids


class _Paths:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.dirs: dict[int, bytes] = {ROOT_DIR: b""}
        self.names: dict[int, bytes] = {}

    def name(self, nid: int) -> bytes:
        raw = self.names.get(nid)
        if raw is None:
            raw = self.names[nid] = bytes(
                self.conn.execute("SELECT raw FROM name WHERE nid = ?", (nid,)).fetchone()[0]
            )
        return raw

    def dir(self, did: int) -> bytes:
        chain: list[tuple[int, int]] = []
        while did not in self.dirs:
            parent, nid = self.conn.execute("SELECT parent, nid FROM dir WHERE did = ?", (did,)).fetchone()
            chain.append((did, nid))
            did = parent
        base = self.dirs[did]
        for child, nid in reversed(chain):
            base = base + b"/" + self.name(nid)
            self.dirs[child] = base
        return base


def _attribute_filters(query: FindQuery, by_name: bool) -> tuple[list[str], list[object]]:
    """SQL for the type, size and mtime bounds (the exact rule runs on every row afterwards
    anyway). Unless rows are read ``by_name`` (through the primary key, from the name
    candidates: usually far fewer), the size and date bounds read the coarse index
    (size magnitude, mtime day), which narrows; the exact comparisons decide."""
    where: list[str] = []
    params: list[object] = []
    if not by_name:
        where, coarse_params = coarse.coarse_filter(query.sizes, query.newer_ns, query.older_ns)
        params.extend(coarse_params)
    if query.kinds:
        where.append(f"kind IN ({', '.join('?' * len(query.kinds))})")
        params.extend(kind_code(k) for k in sorted(query.kinds))
    for bound in query.sizes:
        # '+size': SQLite would put the value of 'size = ?' into the index's expression,
        # which then no longer matches the index
        where.append({"+": "size > ?", "-": "size < ?"}.get(bound.op, "+size = ?"))
        params.append(bound.value)
    if query.newer_ns is not None:
        where.append("mtime > ?")
        params.append(query.newer_ns)
    if query.older_ns is not None:
        where.append("mtime < ?")
        params.append(query.older_ns)
    # SQLite integers are 64-bit; a bound beyond that range holds for every row or none.
    return where, [min(max(p, _INT64_MIN), _INT64_MAX) if isinstance(p, int) else p for p in params]


_INT64_MIN, _INT64_MAX = coarse.INT64_MIN, coarse.INT64_MAX
_WANTED_COLUMNS = "(nid INTEGER PRIMARY KEY)"


def version_query(query: FindQuery, by_name: bool) -> tuple[str, list[object]]:
    """The SELECT over ``ver`` for ``query``; ``by_name``: only the names in the temporary
    table ``wanted`` (columns _WANTED_COLUMNS)."""
    sql = "SELECT lid, did, nid, kind, size, mtime, mode, sha256, first_seq, last_seq FROM ver"
    where, params = _attribute_filters(query, by_name)
    if by_name:
        where.append("nid IN (SELECT nid FROM wanted)")
    return sql + (" WHERE " + " AND ".join(where) if where else ""), params


def catalog_hits(conn: sqlite3.Connection, query: FindQuery) -> Iterator[Hit]:
    """Every (snapshot, path) the query matches, from the catalog (unordered)."""
    visible = _visible(conn, query)
    nids = _candidate_names(conn, query)
    paths = _Paths(conn)
    if nids is not None:
        conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS wanted {_WANTED_COLUMNS}")
        conn.execute("DELETE FROM wanted")
        conn.executemany("INSERT INTO wanted(nid) VALUES (?)", ((n,) for n in nids))
    rows = conn.execute(*version_query(query, by_name=nids is not None))
    for lid, did, nid, code, size, mtime, mode, sha256, first, last in rows.fetchall():
        snaps = visible.covering(lid, first, last)
        if not snaps:
            continue
        kind = kind_name(code)
        path = paths.dir(did) + b"/" + paths.name(nid)
        probe = Hit("", "", "", path, kind, size, mtime, mode, bytes(sha256))
        if not query.matches(probe):
            continue
        for s in snaps:
            yield Hit(s.snapshot_id, s.time_text, s.order, path, kind, size, mtime, mode, bytes(sha256))


def walk_hits(repo: Repository, query: FindQuery, on_error: WalkErrorSink | None = None) -> Iterator[Hit]:
    """The same answer by decrypting and walking every selected snapshot's trees.

    Bounded like every walk (design §9). Without a ``/`` in any pattern the answer
    does not depend on the path, so subtrees found to hold no match are not entered
    again, in any snapshot. A bad tree goes to ``on_error`` (or is raised).
    """
    flt = SnapshotFilter(list(query.hosts), list(query.tags), list(query.paths))
    repo.ensure_index()
    no_match: set[bytes] | None = None if query.on_path() else set()
    for sid, snap in select(repo, flt):
        if not query.snapshot_in_range(snap.datetime):
            continue
        order = order_key(sid, snap)[0]
        match = functools.partial(_matches, query, sid, snap.time, order)
        sink = None if on_error is None else functools.partial(on_error, sid)
        for path, node in walk(repo.load_tree, snap.tree, b"", sink, match, no_match):
            yield _hit(sid, snap.time, order, path, node)


def _hit(sid: str, time: str, order: str, path: bytes, node: Node) -> Hit:
    return Hit(sid, time, order, path, node.type, node.size, node.mtime_ns, node.mode, node.sha256)


def _matches(query: FindQuery, sid: str, time: str, order: str, path: bytes, node: Node) -> bool:
    return query.matches(_hit(sid, time, order, path, node))


def synced_catalog(repo: Repository, notice: Notice) -> sqlite3.Connection | None:
    """The catalog, reconciled with the repository; None when it is off or in doubt."""
    if not store.enabled():  # the CLI passes use_catalog=False when the config turns it off
        return None
    try:
        conn, rebuilt = store.open_catalog(repo.id)
        if rebuilt:
            notice(rebuilt)
        result: SyncResult = sync(conn, repo)
    except CatalogError as exc:
        notice(f"{exc}; searching the trees instead")
        return None
    if result.failed:
        sid, why = result.failed[0]
        notice(f"catalog: snapshot {sid[:8]} could not be indexed ({why}); searching the trees instead")
        conn.close()
        return None
    return conn


def find_hits(
    repo: Repository, query: FindQuery, use_catalog: bool, notice: Notice,
    on_error: WalkErrorSink | None = None,
) -> list[Hit]:  # fmt: skip
    conn = synced_catalog(repo, notice) if use_catalog else None
    if conn is None:
        return list(walk_hits(repo, query, on_error))
    try:
        conn.execute("BEGIN")  # one consistent read while other processes ingest
        try:
            return list(catalog_hits(conn, query))
        finally:
            conn.execute("COMMIT")
    except sqlite3.Error as exc:
        notice(f"catalog: {exc}; searching the trees instead")
        return list(walk_hits(repo, query, on_error))
    finally:
        conn.close()


def _timeline_walk(repo: Repository, path: bytes, flt: SnapshotFilter) -> list[tuple[str, str, Hit | None]]:
    timeline: list[tuple[str, str, Hit | None]] = []
    repo.ensure_index()
    for sid, snap in select(repo, flt):
        order = order_key(sid, snap)[0]
        try:
            node, _ = lookup(repo.load_tree, snap.tree, path)
        except NotFound:
            node = None
        hit = None
        if node is not None:
            hit = Hit(
                sid, snap.time, order, path, node.type, node.size, node.mtime_ns, node.mode, node.sha256
            )
        timeline.append((sid, snap.time, hit))
    return timeline


def _path_hits(conn: sqlite3.Connection, visible: _Lineages, path: bytes) -> dict[str, Hit]:
    """The versions of one path, by snapshot ID, looked up through the directory table."""
    parts = split_path(path)
    if not parts:
        return {}
    did = ROOT_DIR
    nids = []
    for part in parts:
        row = conn.execute(store.NAME_ID_SQL, store.name_key(part)).fetchone()
        if row is None:
            return {}
        nids.append(int(row[0]))
    for nid in nids[:-1]:
        row = conn.execute("SELECT did FROM dir WHERE parent = ? AND nid = ?", (did, nid)).fetchone()
        if row is None:
            return {}
        did = int(row[0])
    full = b"/" + b"/".join(parts)
    hits: dict[str, Hit] = {}
    rows = conn.execute(
        "SELECT lid, kind, size, mtime, mode, sha256, first_seq, last_seq FROM ver WHERE did = ? AND nid = ?",
        (did, nids[-1]),
    )
    for lid, code, size, mtime, mode, sha256, first, last in rows.fetchall():
        kind = kind_name(code)
        for s in visible.covering(lid, first, last):
            hits[s.snapshot_id] = Hit(
                s.snapshot_id, s.time_text, s.order, full, kind, size, mtime, mode, bytes(sha256)
            )
    return hits


def history_timeline(
    repo: Repository, path: bytes, flt: SnapshotFilter, use_catalog: bool, notice: Notice
) -> list[tuple[str, str, Hit | None]]:
    """(snapshot id, time, the path's entry or None) for every selected snapshot, oldest first."""
    conn = synced_catalog(repo, notice) if use_catalog else None
    if conn is None:
        return _timeline_walk(repo, path, flt)
    try:
        query = FindQuery(
            patterns=("*",), hosts=tuple(flt.hosts), tags=tuple(flt.tags), paths=tuple(flt.paths)
        )
        visible = _visible(conn, query)
        hits = _path_hits(conn, visible, path)
    except (sqlite3.Error, AmberError) as exc:
        notice(f"catalog: {exc}; searching the trees instead")
        return _timeline_walk(repo, path, flt)
    finally:
        conn.close()
    snaps = sorted(
        (s for group in visible.by_lid.values() for s in group), key=lambda s: (s.order, s.snapshot_id)
    )
    return [(s.snapshot_id, s.time_text, hits.get(s.snapshot_id)) for s in snaps]
