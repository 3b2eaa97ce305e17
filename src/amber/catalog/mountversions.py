"""Where the mounted view's ``versions/`` listing comes from: the catalog, or the trees.

Both sources answer the same two questions with the same result (a test checks it):
which names a path has below it in any snapshot, and which distinct versions of a
file or symlink a path had, each with the oldest snapshot it appears in.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from amber.catalog import store
from amber.catalog.ingest import ROOT_DIR, sync
from amber.catalog.mountnames import valid_name
from amber.catalog.search import synced_catalog
from amber.catalog.versions import KIND_CODE, kind_name
from amber.engine.treewalk import split_path
from amber.errors import CatalogError
from amber.repository import Node, Repository, Snapshot, Tree
from amber.repository.model import parse_time

VERSIONED_KINDS = ("file", "symlink")
_VERSIONED_CODES = f"({', '.join(str(KIND_CODE[k]) for k in VERSIONED_KINDS)})"
_BY_PLACE = "lid IN (SELECT lid FROM lineage)"


@dataclass(frozen=True)
class FileVersion:
    """One distinct version of a path and the oldest snapshot that holds it."""

    kind: str
    size: int
    mtime_ns: int
    mode: int
    sha256: bytes
    snapshot_id: str
    first_seen: dt.datetime


SnapshotList = Sequence[tuple[str, Snapshot]]  # oldest first


class VersionSource(Protocol):
    def update(self, snapshots: SnapshotList) -> None:
        """The snapshots the view shows changed (or may have)."""

    def children(self, path: bytes) -> set[bytes]:
        """Names below ``path`` (b"" is the root) in any snapshot where it is a directory."""

    def versions(self, path: bytes) -> list[FileVersion]:
        """The distinct file and symlink versions of ``path``, oldest first."""


class TreeEntries:
    """Trees as name -> node maps of their valid names; a bounded LRU."""

    def __init__(self, load_tree: Callable[[bytes], Tree], capacity: int = 1024) -> None:
        self._load_tree = load_tree
        self._capacity = capacity
        self._lock = threading.Lock()
        self._cache: OrderedDict[bytes, dict[bytes, Node]] = OrderedDict()

    def __call__(self, tree_id: bytes) -> dict[bytes, Node]:
        if not tree_id:
            return {}
        with self._lock:
            entries = self._cache.get(tree_id)
            if entries is not None:
                self._cache.move_to_end(tree_id)
                return entries
        # The last of duplicate names wins, as in the catalog's ingestion.
        entries = {n.name: n for n in self._load_tree(tree_id).nodes if valid_name(n.name)}
        with self._lock:
            self._cache[tree_id] = entries
            while len(self._cache) > self._capacity:
                self._cache.popitem(last=False)
        return entries


VersionKey = tuple[str, int, int, int, bytes]  # kind, size, mtime, mode, sha256 (as find --versions)


def _key(node: Node) -> VersionKey:
    return node.type, node.size, node.mtime_ns, node.mode, node.sha256


def _oldest_first(found: dict[VersionKey, tuple[dt.datetime, str]]) -> list[FileVersion]:
    ordered = sorted(found.items(), key=lambda item: (item[1], item[0]))
    return [FileVersion(*key, snapshot_id=sid, first_seen=when) for key, (when, sid) in ordered]


class TreeVersions:
    """Answers by reading each distinct tree once per path (snapshots share most of them)."""

    def __init__(self, entries: TreeEntries) -> None:
        self._entries = entries
        self._snapshots: list[tuple[str, dt.datetime, bytes]] = []
        self._dirs: dict[bytes, dict[bytes, set[int]]] = {}  # path -> tree id -> snapshot positions

    def update(self, snapshots: SnapshotList) -> None:
        self._snapshots = [(sid, snap.datetime, snap.tree) for sid, snap in snapshots]
        self._dirs = {}

    def _trees_at(self, path: bytes) -> dict[bytes, set[int]]:
        """The directory trees found at ``path``, each with the snapshots it is in."""
        cached = self._dirs.get(path)
        if cached is not None:
            return cached
        parts = split_path(path)
        found: dict[bytes, set[int]] = {}
        if not parts:
            for i, (_, _, tree) in enumerate(self._snapshots):
                found.setdefault(tree, set()).add(i)
        else:
            parent = b"/" + b"/".join(parts[:-1]) if len(parts) > 1 else b""
            for tree_id, where in self._trees_at(parent).items():
                node = self._entries(tree_id).get(parts[-1])
                if node is not None and node.type == "dir" and node.subtree:
                    found.setdefault(node.subtree, set()).update(where)
        if len(self._dirs) > 4096:
            self._dirs.clear()
        self._dirs[path] = found
        return found

    def children(self, path: bytes) -> set[bytes]:
        names: set[bytes] = set()
        for tree_id in self._trees_at(path):
            names.update(self._entries(tree_id))
        return names

    def versions(self, path: bytes) -> list[FileVersion]:
        parts = split_path(path)
        if not parts:
            return []
        parent = b"/" + b"/".join(parts[:-1]) if len(parts) > 1 else b""
        found: dict[VersionKey, tuple[dt.datetime, str]] = {}
        for tree_id, where in self._trees_at(parent).items():
            node = self._entries(tree_id).get(parts[-1])
            if node is None or node.type not in VERSIONED_KINDS:
                continue
            sid, when, _ = min((self._snapshots[i] for i in where), key=lambda s: (s[1], s[0]))
            key = _key(node)
            if key not in found or (when, sid) < found[key]:
                found[key] = (when, sid)
        return _oldest_first(found)


def _shared_connection(path: Path) -> sqlite3.Connection:
    """A connection FUSE's worker threads may share (each use holds the source's lock)."""
    return store.connect(path, shared=True)


class CatalogVersions:
    """Answers from the catalog's directory and version tables; synced on every update."""

    def __init__(self, repo: Repository, conn: sqlite3.Connection) -> None:
        self._repo = repo
        self._conn = conn
        self._lock = threading.Lock()

    @classmethod
    def open(cls, repo: Repository, notice: Callable[[str], None]) -> CatalogVersions | None:
        """The repository's catalog, reconciled; None when it is off or in doubt."""
        checked = synced_catalog(repo, notice)
        if checked is None:
            return None
        checked.close()
        try:
            return cls(repo, _shared_connection(store.catalog_path(repo.id)))
        except sqlite3.Error as exc:
            notice(f"catalog: {exc}; listing versions from the trees instead")
            return None

    def close(self) -> None:
        self._conn.close()

    def update(self, snapshots: SnapshotList) -> None:
        with self._lock:
            result = sync(self._conn, self._repo)
        if result.failed:
            sid, why = result.failed[0]
            raise CatalogError(f"catalog: snapshot {sid[:8]} could not be indexed ({why})")

    def _dir_id(self, parts: list[bytes]) -> int | None:
        did = ROOT_DIR
        for part in parts:
            row = self._conn.execute(
                f"SELECT did FROM dir WHERE parent = ? AND nid = ({store.NAME_ID_SQL})",
                (did, *store.name_key(part)),
            ).fetchone()
            if row is None:
                return None
            did = int(row[0])
        return did

    def children(self, path: bytes) -> set[bytes]:
        try:
            with self._lock:
                did = self._dir_id(split_path(path))
                if did is None:
                    return set()
                rows = self._conn.execute(
                    "SELECT raw FROM name WHERE nid IN"
                    f" (SELECT DISTINCT nid FROM ver WHERE {_BY_PLACE} AND did = ?)",
                    (did,),
                ).fetchall()
        except sqlite3.Error as exc:
            raise CatalogError(f"catalog: {exc}") from exc
        return {bytes(r[0]) for r in rows if valid_name(bytes(r[0]))}

    def versions(self, path: bytes) -> list[FileVersion]:
        try:
            return self._versions(path)
        except sqlite3.Error as exc:
            raise CatalogError(f"catalog: {exc}") from exc

    def _versions(self, path: bytes) -> list[FileVersion]:
        parts = split_path(path)
        if not parts:
            return []
        found: dict[VersionKey, tuple[dt.datetime, str]] = {}
        with self._lock:
            did = self._dir_id(parts[:-1])
            if did is None:
                return []
            rows = self._conn.execute(
                "SELECT v.kind, v.size, v.mtime, v.mode, v.sha256, v.lid, v.first_seq, v.last_seq"
                f" FROM ver v WHERE {_BY_PLACE} AND v.did = ?"
                f" AND v.nid = ({store.NAME_ID_SQL}) AND v.kind IN {_VERSIONED_CODES}",
                (did, *store.name_key(parts[-1])),
            ).fetchall()
            for kind, size, mtime, mode, sha256, lid, first, last in rows:
                snap = self._conn.execute(
                    "SELECT snap_id, time_text FROM snap WHERE lid = ? AND seq >= ?"
                    " AND (? IS NULL OR seq <= ?) ORDER BY time, snap_id LIMIT 1",
                    (lid, first, last, last),
                ).fetchone()
                if snap is None:
                    continue
                key = (kind_name(kind), int(size), int(mtime), int(mode), bytes(sha256))
                seen = (parse_time(snap[1]), str(snap[0]))
                if key not in found or seen < found[key]:
                    found[key] = seen
        return _oldest_first(found)
