"""The ``watch_rpo`` table of the state database: how long each watched change waited to be safe.

The RPO achieved by one watched snapshot is the time from the first change it
holds until it was committed on the job's repository and copied to every mirror
(the end of the run). Metrics report the last and the worst of recent ones.
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass

from amber.ops import state

_SCHEMA = """
CREATE TABLE IF NOT EXISTS watch_rpo (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job TEXT NOT NULL,
    first_change REAL NOT NULL,
    committed REAL NOT NULL,
    changed INTEGER NOT NULL DEFAULT 0,   -- paths marked (0 for a full walk)
    snapshot TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS watch_rpo_job ON watch_rpo (job, committed);
"""
RECENT = 100


@dataclass(frozen=True)
class RpoRow:
    job: str
    first_change: float
    committed: float
    changed: int
    snapshot: str

    @property
    def seconds(self) -> float:
        return max(0.0, self.committed - self.first_change)


class WatchHistory:
    def __init__(self, path: str) -> None:
        self.path = path
        state.prepare(path, _SCHEMA)

    def _db(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return state.connect(self.path)

    def add(self, row: RpoRow) -> None:
        with self._db() as db:
            db.execute("INSERT INTO watch_rpo (job, first_change, committed, changed, snapshot) "
                       "VALUES (?, ?, ?, ?, ?)",
                       (row.job, row.first_change, row.committed, row.changed, row.snapshot))  # fmt: skip

    def recent(self, job: str, limit: int = RECENT) -> list[RpoRow]:
        """Newest first."""
        with self._db() as db:
            rows = db.execute(
                "SELECT job, first_change, committed, changed, snapshot FROM watch_rpo "
                "WHERE job=? ORDER BY committed DESC LIMIT ?",
                (job, limit),
            ).fetchall()
        return [RpoRow(r["job"], r["first_change"], r["committed"], r["changed"], r["snapshot"])
                for r in rows]  # fmt: skip
