"""The catalog's SQLite file: where it lives, its schema, and rebuilding it when in doubt.

The catalog is a cache of what the repository's trees say (docs/design.md §2, §24).
Nothing in it is ever trusted over the repository: a missing, corrupt, foreign or
old-schema file is deleted and built again from the snapshots.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from amber.catalog import coarse
from amber.catalog.versions import extension, fold_text
from amber.errors import CatalogError

SCHEMA_VERSION = 5  # 3: compact rows (kind codes, one name copy, one place index), case folding;
# 4: ingest fills the trigram index itself (a trigger made each new name ~10x dearer);
# 5: names found by a 32-bit hash, one coarse (size, mtime) index instead of two
_BUSY_TIMEOUT_MS = 30_000

# One row per file *version* (a path with the same content and metadata), carrying the
# range of sequence numbers of its lineage's snapshots in which it appears.
# Sizes (design §24): a name is stored once, as its raw bytes; the trigram index reads
# its case-folded text through a view (amber_fold, registered on every connection), and
# ingest adds each new name to it in the same transaction;
# names are found by one index on (extension, 32-bit hash of the bytes): the extension
# alone answers `*.ext`, both (the extension is computed from the bytes) find a name, and
# the lookup then compares the bytes (amber_name_hash; ~19 bytes a name where an index
# on the bytes and one on the extension took ~43);
# ver is clustered by place (name, directory, lineage, first snapshot), which serves
# find's name lookup, history, the mount and ingest; its only other index is the coarse
# one on (size magnitude, mtime day) for the size and date filters (coarse.py).
_SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE lineage (
    lid INTEGER PRIMARY KEY,
    host TEXT NOT NULL,
    paths TEXT NOT NULL,
    UNIQUE (host, paths)
);
CREATE TABLE snap (
    sid INTEGER PRIMARY KEY,
    snap_id TEXT NOT NULL UNIQUE,
    lid INTEGER NOT NULL REFERENCES lineage(lid),
    seq INTEGER NOT NULL,
    time TEXT NOT NULL,
    time_text TEXT NOT NULL,
    tags TEXT NOT NULL,
    tree BLOB NOT NULL,
    UNIQUE (lid, seq)
);
CREATE TABLE name (
    nid INTEGER PRIMARY KEY,
    raw BLOB NOT NULL,
    ext TEXT NOT NULL,
    form INTEGER NOT NULL
);
CREATE INDEX name_key ON name(ext, amber_name_hash(raw));
CREATE INDEX name_bytes ON name(nid) WHERE form = 0;
CREATE VIEW name_fold(nid, fold) AS SELECT nid, amber_fold(raw) FROM name;
CREATE VIRTUAL TABLE name_tri USING fts5(
    fold, content='name_fold', content_rowid='nid', tokenize='trigram', detail='none', columnsize=0
);
CREATE TABLE dir (
    did INTEGER PRIMARY KEY,
    parent INTEGER NOT NULL,
    nid INTEGER NOT NULL,
    UNIQUE (parent, nid)
);
CREATE TABLE ver (
    nid INTEGER NOT NULL,
    did INTEGER NOT NULL,
    lid INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime INTEGER NOT NULL,
    mode INTEGER NOT NULL,
    sha256 BLOB NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER,
    PRIMARY KEY (nid, did, lid, first_seq)
) WITHOUT ROWID;
{coarse.INDEX_SQL};
"""
# A name's ID by its bytes (parameters: name_key(raw)): the index finds the candidates,
# the bytes decide.
NAME_ID_SQL = "SELECT nid FROM name WHERE ext = ? AND amber_name_hash(raw) = ? AND raw = ?"


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "amber"


def catalog_path(repository_id: str) -> Path:
    return cache_root() / repository_id / "catalog.sqlite"


def enabled(configured: bool = True) -> bool:
    """Off with ``[catalog] enabled = false`` in the config, or ``AMBER_CATALOG=off`` (or 0/no/false)."""
    switched_off = os.environ.get("AMBER_CATALOG", "on").strip().lower() in {"off", "0", "no", "false"}
    return configured and not switched_off


def _sql_fold(raw: bytes | str | None) -> str | None:
    if raw is None:
        return None
    return fold_text(raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else bytes(raw))


def name_hash(raw: bytes) -> int:
    """The index key of a name: 32 bits of BLAKE2b (a hash nobody can cheaply collide, so a
    tree of crafted names cannot pile them onto one key), as a signed 4-byte integer."""
    return int.from_bytes(_blake2b(raw, digest_size=4).digest(), "big", signed=True)


_blake2b = hashlib.blake2b  # name_hash runs for every name ingest looks up or adds


def name_key(raw: bytes) -> tuple[str, int, bytes]:
    """The parameters of NAME_ID_SQL for the name ``raw``."""
    return extension(raw), name_hash(raw), raw


def _sql_name_hash(raw: bytes | str | None) -> int | None:
    if type(raw) is bytes:  # what ingest stores
        return name_hash(raw)
    if raw is None:
        return None
    return name_hash(raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else bytes(raw))


def connect(path: Path, shared: bool = False) -> sqlite3.Connection:
    """A connection with amber's SQL functions; ``shared``: usable from several threads
    (the caller serialises uses)."""
    conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=not shared)  # fmt: skip
    conn.create_function("amber_fold", 1, _sql_fold, deterministic=True)
    conn.create_function("amber_name_hash", 1, _sql_name_hash, deterministic=True)
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA cache_size = -65536")
    return conn


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".checked")


def _file_state(path: Path) -> str:
    """The database file's size, mtime and inode. (The WAL is left out: SQLite checksums its
    frames and stops at the first bad one, and what is lost that way is ingested again.)"""
    st = os.stat(path)
    return f"{st.st_size} {st.st_mtime_ns} {st.st_ino}"


def _checked_before(path: Path) -> bool:
    try:
        return _stamp_path(path).read_text() == _file_state(path)
    except OSError:
        return False


def mark_checked(conn: sqlite3.Connection) -> None:
    """Record that the file is as amber last left it (after a quick check, or after amber's own
    writes), so the next open can skip the quick check, which reads the whole file.

    The WAL is folded into the database first, so that a reader closing the last
    connection has nothing to checkpoint (which would change the file again). PASSIVE:
    never wait for readers; what a reader keeps in the WAL costs one more check later.
    """
    try:
        path = Path(conn.execute("PRAGMA database_list").fetchone()[2])
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        stamp = _stamp_path(path)
        tmp = stamp.with_name(stamp.name + ".tmp")
        tmp.write_text(_file_state(path))
        os.chmod(tmp, 0o600)
        os.replace(tmp, stamp)
    except (OSError, sqlite3.Error, TypeError):
        pass  # without a stamp, the next open runs the quick check


def _healthy(conn: sqlite3.Connection, repository_id: str, path: Path) -> bool:
    """The file is ours and current, and passes SQLite's quick check unless it is unchanged
    since amber last checked or wrote it."""
    try:
        rows = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        if rows.get("schema") != str(SCHEMA_VERSION) or rows.get("repository") != repository_id:
            return False
        if _checked_before(path):
            return True
        if conn.execute("PRAGMA quick_check").fetchone() != ("ok",):
            return False
    except sqlite3.DatabaseError:
        return False
    mark_checked(conn)
    return True


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", ".checked"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(str(path) + suffix)


def _create(path: Path, repository_id: str) -> sqlite3.Connection:
    conn = connect(path)
    # executescript commits first, so the schema goes in as one script with its own BEGIN/COMMIT.
    conn.executescript(f"BEGIN;\n{_SCHEMA}\nCOMMIT;")
    with transaction(conn):
        conn.executemany(
            "INSERT INTO meta(key, value) VALUES (?, ?)",
            [("schema", str(SCHEMA_VERSION)), ("repository", repository_id)],
        )
    return conn


def open_catalog(repository_id: str, path: Path | None = None) -> tuple[sqlite3.Connection, str | None]:
    """Open (or create) the catalog. Returns the connection and a notice when it was rebuilt.

    The directory is 0700 and the file 0600: it holds file names in clear.
    """
    path = path or catalog_path(repository_id)
    notice: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path.parent, 0o700)
        if path.exists():
            try:
                conn = connect(path)
            except sqlite3.DatabaseError:
                conn = None
            if conn is not None and _healthy(conn, repository_id, path):
                return conn, None
            if conn is not None:
                conn.close()
            _remove(path)
            notice = f"catalog {path} was damaged or outdated; rebuilding it from the repository"
        old_umask = os.umask(0o077)
        try:
            conn = _create(path, repository_id)
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        return conn, notice
    except (OSError, sqlite3.Error) as exc:
        raise CatalogError(f"catalog {path}: {exc}") from exc


def drop(repository_id: str, path: Path | None = None) -> bool:
    path = path or catalog_path(repository_id)
    existed = path.exists()
    _remove(path)
    return existed


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT: one writer at a time, readers never blocked (WAL)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
