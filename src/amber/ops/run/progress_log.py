"""Run progress in the state database, for dashboards in other processes.

A job's sink gets a :class:`ProgressRecorder`; it keeps one row per running job
in ``run_progress`` (at most one write a second) and removes it when the job
ends. `amber web` started on its own reads these rows to show live progress of
runs the daemon, a timer or a terminal started. A row whose process is gone,
or that was not refreshed for :data:`STALE_AFTER` seconds, is ignored: the
state database is derived data, never trusted over what runs.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from amber.errors import StateError
from amber.events import Events, RunEvent, Subscriber
from amber.ops import state

WRITE_INTERVAL = 1.0  # seconds between writes of one job's row
STALE_AFTER = 120.0  # a row not refreshed for this long belongs to a hung or killed run

_SCHEMA = """
CREATE TABLE IF NOT EXISTS run_progress (
    job TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    started REAL NOT NULL,
    updated REAL NOT NULL,
    phase TEXT NOT NULL DEFAULT '',
    files INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    errors INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass
class ProgressRow:
    job: str
    pid: int
    started: float
    updated: float
    phase: str = ""
    files: int = 0
    bytes: int = 0
    errors: int = 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


class ProgressLog:
    def __init__(self, path: str) -> None:
        self.path = path
        state.prepare(path, _SCHEMA)

    def write(self, row: ProgressRow) -> None:
        with state.connect(self.path) as db:
            db.execute("INSERT OR REPLACE INTO run_progress VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (row.job, row.pid, row.started, row.updated, row.phase, row.files, row.bytes,
                        row.errors))  # fmt: skip

    def remove(self, job: str, pid: int) -> None:
        with state.connect(self.path) as db:
            db.execute("DELETE FROM run_progress WHERE job = ? AND pid = ?", (job, pid))

    def running(self, now: float | None = None) -> dict[str, ProgressRow]:
        """The rows of runs still going: the process exists and wrote recently."""
        now = time.time() if now is None else now
        with state.connect(self.path) as db:
            query = "SELECT job, pid, started, updated, phase, files, bytes, errors FROM run_progress"
            rows = [ProgressRow(*r) for r in db.execute(query)]
        return {r.job: r for r in rows if now - r.updated <= STALE_AFTER and _alive(r.pid)}


class ProgressRecorder(Subscriber):
    """One job's progress into :class:`ProgressLog`, throttled; the backup step's files and bytes.

    A failing write is reported once through ``note`` and then given up: progress
    must never fail a backup."""

    def __init__(self, log: ProgressLog, job: str, note: Callable[[str], None],
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.log, self.note, self.clock = log, note, clock
        now = clock()
        self.row = ProgressRow(job, os.getpid(), now, now, "starting")
        self._counting, self._written, self._broken = True, 0.0, False
        self._save(force=True)

    def _save(self, force: bool = False) -> None:
        now = self.clock()
        if self._broken or (not force and now - self._written < WRITE_INTERVAL):
            return
        self.row.updated, self._written = now, now
        try:
            self.log.write(self.row)
        except (StateError, sqlite3.Error) as exc:
            self._broken = True
            self.note(f"run progress not recorded: {getattr(exc, 'message', exc)}")

    def file_done(self, path: bytes, size: int, status: str) -> None:
        if self._counting:
            self.row.files += 1
            self.row.phase = "backing up"
            self._save()

    def bytes_done(self, n: int) -> None:
        if self._counting:
            self.row.bytes += n
            self._save()

    def error(self, path: bytes, message: str) -> None:
        if self._counting:
            self.row.errors += 1
            self._save()

    def notice(self, kind: str, message: str) -> None:
        if kind == "step":  # "backup main", "copy usb", "check main": only the backup is counted
            self._counting = message.startswith("backup ")
            self.row.phase = message
            self._save(force=True)

    def run_event(self, event: RunEvent) -> None:
        return None

    def close(self) -> None:
        if self._broken:
            return
        with contextlib.suppress(StateError, sqlite3.Error):
            self.log.remove(self.row.job, self.row.pid)


@contextlib.contextmanager
def recorded(path: str, job: str, events: Events) -> Iterator[None]:
    """Record the progress ``events`` carry for ``job`` while the block runs (call it under the job's
    lock, so that only the process running the job writes its row)."""

    def note(message: str) -> None:
        events.notice("note", message)

    try:
        recorder = ProgressRecorder(ProgressLog(path), job, note)
    except StateError as exc:  # no state database: the run goes on, unseen by other dashboards
        note(f"run progress not recorded: {exc.message}")
        yield
        return
    unsubscribe = events.subscribe(recorder)
    try:
        yield
    finally:
        unsubscribe()
        recorder.close()
