"""Daily repository usage samples in the state database: the input of the capacity forecast.

One row per repository and day (the latest sample of the day wins). Local
repositories are sampled from their filesystem (``statvfs``: used and total
bytes, as PBS measures a datastore) and their snapshot count (the objects in
``snapshots/``, counted without a key); others have no known capacity yet.
The ``snapshots`` column came later: databases without it gain it in place.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sqlite3

from amber.errors import AmberError
from amber.ops import state
from amber.ops.config.model import Config
from amber.ops.reports.forecast import DAY, Sample
from amber.storage.base import FileType
from amber.storage.url import open_backend, parse_location

_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage_samples (
    repository TEXT NOT NULL,
    day TEXT NOT NULL,               -- YYYY-MM-DD, UTC
    taken REAL NOT NULL,
    used INTEGER NOT NULL,
    total INTEGER,                   -- NULL: capacity unknown
    snapshots INTEGER,               -- NULL: not counted (added later: see _migrate)
    PRIMARY KEY (repository, day)
);
"""


class UsageLog:
    def __init__(self, path: str) -> None:
        self.path = path
        state.prepare(path, _SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Add ``snapshots`` to a table made before it existed (its rows keep NULL: not counted)."""
        with self._db() as db:
            columns = {row["name"] for row in db.execute("PRAGMA table_info(usage_samples)")}
            if "snapshots" in columns:
                return
            try:
                db.execute("ALTER TABLE usage_samples ADD COLUMN snapshots INTEGER")
            except sqlite3.OperationalError as exc:  # another process added it just now
                if "duplicate column" not in str(exc):
                    raise

    def _db(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return state.connect(self.path)

    def record(self, repository: str, taken: float, used: int, total: int | None,
               snapshots: int | None = None) -> None:  # fmt: skip
        day = dt.datetime.fromtimestamp(taken, dt.UTC).date().isoformat()
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO usage_samples "
                       "(repository, day, taken, used, total, snapshots) VALUES (?, ?, ?, ?, ?, ?)",
                       (repository, day, taken, used, total, snapshots))  # fmt: skip

    def samples(self, repository: str, since: float = 0.0) -> list[Sample]:
        """Oldest first."""
        with self._db() as db:
            rows = db.execute(
                "SELECT taken, used, total, snapshots FROM usage_samples WHERE repository=? AND taken>=? "
                "ORDER BY taken",
                (repository, since),
            ).fetchall()
        return [Sample(r["taken"], r["used"], r["total"], r["snapshots"]) for r in rows]


def local_usage(location: str) -> tuple[int, int] | None:
    """(used, total) bytes of the filesystem holding a local repository; None if not local or absent."""
    try:
        where = parse_location(location)
    except Exception:  # a location the config check would reject: nothing to sample
        return None
    if where.scheme != "local" or not os.path.isdir(where.path):
        return None
    st = os.statvfs(where.path)
    total = st.f_blocks * st.f_frsize
    return total - st.f_bfree * st.f_frsize, total


def snapshot_count(location: str) -> int | None:
    """The objects in a repository's ``snapshots/``, listed without a key; None when unreadable."""
    try:
        backend = open_backend(location)
        try:
            return sum(1 for _ in backend.list(FileType.SNAPSHOT))
        finally:
            backend.close()
    except AmberError:
        return None


def sample_repositories(config: Config, log: UsageLog, now: float) -> None:
    """Record today's usage and snapshot count of every configured local repository."""
    for name, repo in config.repositories.items():
        found = local_usage(repo.url)
        if found is not None:
            log.record(name, now, *found, snapshot_count(repo.url))


def month_of(log: UsageLog, repository: str, now: float) -> list[Sample]:
    return log.samples(repository, now - 31 * DAY)
