"""The local state database (SQLite): run history, scheduler stamps, and per-job locks.

It is derived data: deleting it loses history and schedule stamps, never
backups. sqlite3 errors become ``StateError`` here. The per-job lock is an
flock on ``<state dir>/locks/<job>.lock``, released by the kernel if the
process dies, so a crashed run never blocks the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from amber.errors import JobRunning, StateError
from amber.ops.private import private_dir, private_file, tighten
from amber.redact import redact

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    status TEXT NOT NULL,            -- running | success | partial | failed | interrupted
    bytes_added INTEGER NOT NULL DEFAULT 0,
    files INTEGER NOT NULL DEFAULT 0,
    snapshot_ids TEXT NOT NULL DEFAULT '[]',
    destinations TEXT NOT NULL DEFAULT '[]',
    errors TEXT NOT NULL DEFAULT '[]',
    host TEXT NOT NULL DEFAULT '',
    pid INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_job_started ON runs (job, started);
CREATE TABLE IF NOT EXISTS schedule_stamps (
    task TEXT PRIMARY KEY,           -- "run:JOB", "check:JOB", "drill:JOB"
    fired REAL NOT NULL
);
"""
STATUSES = ("success", "partial", "failed", "interrupted")


@dataclass
class Destination:
    """What one step did to one repository."""

    name: str
    step: str  # backup | copy | retention | object-lock | check
    status: str  # success | partial | failed | skipped
    message: str = ""
    snapshot_id: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunRecord:
    job: str
    started: float
    ended: float | None = None
    status: str = "running"
    bytes_added: int = 0
    files: int = 0
    snapshot_ids: list[str] = field(default_factory=list)
    destinations: list[Destination] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    id: int = 0

    @property
    def duration(self) -> float:
        return (self.ended or time.time()) - self.started

    def as_dict(self) -> dict[str, Any]:
        """The record as output, events and alerts see it: URL credentials masked."""
        return {
            "id": self.id, "job": self.job, "started": self.started, "ended": self.ended,
            "status": self.status, "bytes_added": self.bytes_added, "files": self.files,
            "snapshot_ids": self.snapshot_ids, "errors": _masked(self.errors),
            "destinations": [_masked(d.__dict__) for d in self.destinations],
        }  # fmt: skip


def _record(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        job=row["job"], started=row["started"], ended=row["ended"], status=row["status"],
        bytes_added=row["bytes_added"], files=row["files"],
        snapshot_ids=json.loads(row["snapshot_ids"]),
        destinations=[Destination(**d) for d in json.loads(row["destinations"])],
        errors=json.loads(row["errors"]), id=row["id"],
    )  # fmt: skip


def _masked(value: Any) -> Any:
    """Strings with every URL's credentials masked, recursively: no secret reaches the DB."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return value


def _destinations_json(run: RunRecord) -> str:
    return json.dumps([_masked(d.__dict__) for d in run.destinations])


def _errors_json(run: RunRecord) -> str:
    return json.dumps(_masked(run.errors))


def secure_database(path: str) -> None:
    """The database file 0600 before sqlite opens it (its -wal and -shm files copy that mode)."""
    if path == ":memory:":
        return
    private_file(path)
    for side in ("-wal", "-shm", "-journal"):
        tighten(path + side)


def prepare(path: str, schema: str) -> None:
    """Create the state directory and apply ``schema`` (idempotent CREATE ... IF NOT EXISTS)."""
    try:
        private_dir(os.path.dirname(os.path.abspath(path)))
    except OSError as exc:
        raise StateError(f"cannot create state directory for {path}: {exc.strerror}") from exc
    with connect(path) as db:
        db.executescript(schema)


@contextlib.contextmanager
def connect(path: str) -> Iterator[sqlite3.Connection]:
    """One short transaction on the state database; sqlite errors become StateError."""
    try:
        secure_database(path)
        db = sqlite3.connect(path, timeout=30)
    except OSError as exc:
        raise StateError(f"cannot open state database {path}: {exc.strerror}") from exc
    except sqlite3.Error as exc:
        raise StateError(f"cannot open state database {path}: {exc}") from exc
    try:
        db.row_factory = sqlite3.Row
        _use_wal(db)
        with db:
            yield db
    except sqlite3.Error as exc:
        raise StateError(f"state database {path}: {exc}") from exc
    finally:
        db.close()


def _use_wal(db: sqlite3.Connection) -> None:
    """WAL mode, set once per file. Switching needs the file to itself, and sqlite gives up at
    once (no busy timeout) when two threads create the database together: retry then."""
    for attempt in range(100):
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 99:
                raise
            time.sleep(0.05)


class StateDB:
    """Short transactions on a WAL database; safe for several processes."""

    def __init__(self, path: str) -> None:
        self.path = path
        prepare(path, _SCHEMA)

    def _db(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return connect(self.path)

    def begin(self, job: str, host: str = "") -> RunRecord:
        """Record a new running run; earlier 'running' rows of the job were interrupted."""
        now = time.time()
        with self._db() as db:
            db.execute(
                "UPDATE runs SET status='failed', ended=started, errors=? WHERE job=? AND status='running'",
                (json.dumps(["interrupted: the process ended before the run finished"]), job),
            )
            cur = db.execute(
                "INSERT INTO runs (job, started, status, host, pid) VALUES (?, ?, 'running', ?, ?)",
                (job, now, host, os.getpid()),
            )
        return RunRecord(job=job, started=now, id=int(cur.lastrowid or 0))

    def finish(self, run: RunRecord) -> None:
        if run.status not in STATUSES:
            raise ValueError(f"bad final status {run.status!r}")
        run.ended = run.ended or time.time()
        with self._db() as db:
            db.execute(
                "UPDATE runs SET ended=?, status=?, bytes_added=?, files=?, snapshot_ids=?, destinations=?,"
                " errors=? WHERE id=?",
                (run.ended, run.status, run.bytes_added, run.files, json.dumps(run.snapshot_ids),
                 _destinations_json(run), _errors_json(run), run.id),
            )  # fmt: skip

    def add(self, run: RunRecord) -> RunRecord:
        """Insert a run that has already finished (a manual ``amber copy``) in one transaction."""
        if run.status not in STATUSES:
            raise ValueError(f"bad final status {run.status!r}")
        run.ended = run.ended or time.time()
        with self._db() as db:
            cur = db.execute(
                "INSERT INTO runs (job, started, ended, status, bytes_added, files, snapshot_ids,"
                " destinations, errors, host, pid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run.job, run.started, run.ended, run.status, run.bytes_added, run.files,
                 json.dumps(run.snapshot_ids), _destinations_json(run),
                 _errors_json(run), socket.gethostname(), os.getpid()),
            )  # fmt: skip
        run.id = int(cur.lastrowid or 0)
        return run

    def runs(self, job: str | None = None, limit: int = 100) -> list[RunRecord]:
        """Newest first."""
        where = " WHERE job=?" if job else ""
        query = f"SELECT * FROM runs{where} ORDER BY started DESC, id DESC LIMIT ?"
        with self._db() as db:
            rows = db.execute(query, ((job, limit) if job else (limit,))).fetchall()
        return [_record(r) for r in rows]

    def recent_by_job(
        self, jobs: list[str], limit: int
    ) -> dict[str, tuple[list[RunRecord], RunRecord | None]]:
        """Per job, in one transaction: its ``limit`` newest runs and its last successful one."""
        out = {}
        with self._db() as db:
            for job in jobs:
                rows = db.execute("SELECT * FROM runs WHERE job=? ORDER BY started DESC, id DESC LIMIT ?",
                                  (job, limit)).fetchall()  # fmt: skip
                ok = db.execute("SELECT * FROM runs WHERE job=? AND status='success'"
                                " ORDER BY started DESC, id DESC LIMIT 1", (job,)).fetchone()  # fmt: skip
                out[job] = ([_record(r) for r in rows], _record(ok) if ok else None)
        return out

    def last(self, job: str, statuses: tuple[str, ...] = STATUSES) -> RunRecord | None:
        marks = ",".join("?" * len(statuses))
        with self._db() as db:
            row = db.execute(
                f"SELECT * FROM runs WHERE job=? AND status IN ({marks})"
                " ORDER BY started DESC, id DESC LIMIT 1",
                (job, *statuses),
            ).fetchone()
        return _record(row) if row else None

    def last_success(self, job: str) -> RunRecord | None:
        return self.last(job, ("success",))

    def stamp(self, task: str) -> float | None:
        with self._db() as db:
            row = db.execute("SELECT fired FROM schedule_stamps WHERE task=?", (task,)).fetchone()
        return float(row["fired"]) if row else None

    def set_stamp(self, task: str, fired: float) -> None:
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO schedule_stamps (task, fired) VALUES (?, ?)", (task, fired))


@contextlib.contextmanager
def job_lock(state_dir: str, job: str) -> Iterator[None]:
    """Hold the job's flock for the block; JobRunning if another process holds it."""
    directory = os.path.join(state_dir, "locks")
    path = os.path.join(directory, f"{job.replace('/', '_')}.lock")
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StateError(f"cannot create job lock {path}: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            raise JobRunning(f"job {job} is already running (pid {holder}); not starting it twice") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
