"""The ``drills`` table of the state database: every drill's result, for metrics and status."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from amber.ops import state

_SCHEMA = """
CREATE TABLE IF NOT EXISTS drills (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL,
    ended REAL NOT NULL,
    repository TEXT NOT NULL,
    job TEXT NOT NULL DEFAULT '',
    mode TEXT NOT NULL,              -- sample | full
    status TEXT NOT NULL,            -- success | integrity | command_failed | error
    snapshot_ids TEXT NOT NULL DEFAULT '[]',
    files INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    seconds REAL NOT NULL DEFAULT 0,
    throughput REAL NOT NULL DEFAULT 0,     -- bytes/s
    estimated_full_seconds REAL NOT NULL DEFAULT 0,
    seed INTEGER NOT NULL DEFAULT 0,
    command_exit INTEGER,
    failures TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS drills_repository_started ON drills (repository, started);
"""


@dataclass(frozen=True)
class DrillRow:
    started: float
    ended: float
    repository: str
    job: str
    mode: str
    status: str
    snapshot_ids: list[str]
    files: int
    bytes: int
    seconds: float
    throughput: float
    estimated_full_seconds: float
    seed: int
    command_exit: int | None
    failures: list[str]

    @property
    def ok(self) -> bool:
        return self.status == "success"


@dataclass(frozen=True)
class DrillStats:
    repository: str
    total: int
    successes: int
    last_started: float
    last_ok: bool
    last_throughput: float
    last_estimated_full_seconds: float

    @property
    def success_rate(self) -> float:
        return self.successes / self.total if self.total else 0.0


class DrillHistory:
    def __init__(self, path: str) -> None:
        self.path = path
        state.prepare(path, _SCHEMA)

    def _db(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return state.connect(self.path)

    def add(self, row: DrillRow) -> None:
        values: dict[str, Any] = dict(row.__dict__)
        values["snapshot_ids"] = json.dumps(row.snapshot_ids)
        values["failures"] = json.dumps(row.failures[:100])
        columns = ", ".join(values)
        marks = ", ".join(f":{k}" for k in values)
        with self._db() as db:
            db.execute(f"INSERT INTO drills ({columns}) VALUES ({marks})", values)

    def recent(self, repository: str | None = None, limit: int = 20) -> list[DrillRow]:
        """Newest first."""
        where = " WHERE repository=?" if repository else ""
        args: tuple[Any, ...] = (repository, limit) if repository else (limit,)
        with self._db() as db:
            rows = db.execute(f"SELECT * FROM drills{where} ORDER BY started DESC, id DESC LIMIT ?",
                              args).fetchall()  # fmt: skip
        return [_row(r) for r in rows]

    def stats(self, since: float = 0.0) -> list[DrillStats]:
        """Per repository: drills since ``since`` (unix time), successes and the latest one."""
        with self._db() as db:
            query = "SELECT * FROM drills WHERE started >= ? ORDER BY started, id"
            rows = db.execute(query, (since,)).fetchall()
        by_repo: dict[str, list[DrillRow]] = {}
        for r in rows:
            row = _row(r)
            by_repo.setdefault(row.repository, []).append(row)
        out = []
        for repo, rs in sorted(by_repo.items()):
            last = rs[-1]
            successes = sum(1 for x in rs if x.ok)
            out.append(DrillStats(repo, len(rs), successes, last.started, last.ok, last.throughput,
                                  last.estimated_full_seconds))  # fmt: skip
        return out


def _row(r: sqlite3.Row) -> DrillRow:
    return DrillRow(
        started=r["started"], ended=r["ended"], repository=r["repository"], job=r["job"], mode=r["mode"],
        status=r["status"], snapshot_ids=json.loads(r["snapshot_ids"]), files=r["files"], bytes=r["bytes"],
        seconds=r["seconds"], throughput=r["throughput"], estimated_full_seconds=r["estimated_full_seconds"],
        seed=r["seed"], command_exit=r["command_exit"], failures=json.loads(r["failures"]),
    )  # fmt: skip


def now() -> float:
    return time.time()
