"""The fleet view from ``amber run``'s side: after each job, this host's run record goes into the
job's repository (``services.fleet``); and every host's records, read back for the dashboard.

Publishing is best effort: a record that cannot be written is a note, never a
failed job. A run whose backup could not reach the repository writes nothing
(the write would fail the same way, after the same retries).
"""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from amber import errors
from amber.errors import AmberError, RepositoryNotFound, StorageError, WrongPassword
from amber.ops.config.model import Config, JobConfig
from amber.ops.run.steps import Repositories
from amber.ops.state import RunRecord, StateDB
from amber.redact import redact
from amber.repository.run_records import MAX_NAME, MAX_REASONS, MAX_RUNS, MAX_TEXT, FleetRecord, RunEntry
from amber.services import fleet as fleet_service
from amber.services import session
from amber.services.context import OperationContext
from amber.storage.url import BackendOptions

_UNREACHABLE = (StorageError, RepositoryNotFound, WrongPassword)
# a page waits for these reads: one retry and a short deadline, not a backup's patience
GLANCE = BackendOptions(extra={"retries": "1", "timeout": "15"})


def build_record(config: Config, job: JobConfig, db: StateDB, now: float) -> FleetRecord:
    from amber.ops import board  # board reads scheduled checks, which import ops.run

    status = next(s for s in board.board(config, now, sample=False) if s.name == job.name)
    _next, interval = board.schedule_times(job.schedule, now)
    runs = [_entry(r) for r in db.runs(job.name, limit=MAX_RUNS) if r.status != "running"]
    reasons = [t[:MAX_TEXT] for t in status.verdict.texts[:MAX_REASONS]]
    host = (job.host or socket.gethostname())[:MAX_NAME]
    return FleetRecord(host=host, job=job.name[:MAX_NAME], written=now, interval=interval or 0.0,
                       verdict=status.verdict.verdict, reasons=reasons, runs=runs)  # fmt: skip


def _entry(run: RunRecord) -> RunEntry:
    error = redact(run.errors[0])[:MAX_TEXT] if run.errors else ""
    return RunEntry(run.started, max(run.ended or run.started, 0.0), run.status, max(run.bytes_added, 0),
                    max(run.files, 0), len(run.errors), error)  # fmt: skip


def _reached_repository(record: RunRecord) -> bool:
    backup = next((d for d in record.destinations if d.step == "backup"), None)
    if backup is None or backup.status != "failed":
        return True
    cls = getattr(errors, str(backup.details.get("error", "")), None)
    return not (isinstance(cls, type) and issubclass(cls, _UNREACHABLE))


def publish_run(repos: Repositories, job: JobConfig, db: StateDB, record: RunRecord,
                note: Callable[[str], None]) -> None:  # fmt: skip
    """After a job: write this host's record into the job's repository; a failure is only a note."""
    if not _reached_repository(record):
        return
    try:
        now = time.time()
        fleet_record = build_record(repos.config, job, db, now)
        name = job.repository
        with repos.open_unlocked(name) as repo:
            fleet_service.publish(repo, fleet_record, now)
    except AmberError as exc:
        note(f"{job.name}: run record not written to {job.repository}: {exc.message}")


@dataclass
class FleetRow:
    repository: str
    record: FleetRecord
    stale: bool  # the host has not reported for longer than its schedule allows


@dataclass
class FleetView:
    rows: list[FleetRow] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # unreachable repositories, refused records


def unlocated(message: str, url: str, name: str) -> str:
    """A message for a page: the repository named, its location (and any credential) left out."""
    return redact(message.replace(url, f"<{name}>"))


def stale(record: FleetRecord, now: float, stale_hours: float) -> bool:
    allowed = max(2 * record.interval, stale_hours * 3600.0)
    return not math.isfinite(record.written) or now - record.written > allowed


def fleet_view(config: Config, passwords: session.PasswordSource, now: float | None = None) -> FleetView:
    """Every host's newest record per job, from each configured repository that is connected."""
    now = time.time() if now is None else now
    repos = Repositories(config, passwords, OperationContext(GLANCE))
    view = FleetView()
    for name, settings in sorted(config.repositories.items()):
        if settings.offline and not repos.present(name):
            continue
        try:
            with session.opened(settings.url, repos.passwords(name), lock=False, options=repos.options(name),
                                ctx=repos.ctx, load_index=False, read_only=True) as repo:  # fmt: skip
                found = fleet_service.fleet(repo)
        except AmberError as exc:
            view.problems.append(f"{name}: {unlocated(exc.message, settings.url, name)}")
            continue
        view.rows += [FleetRow(name, r, stale(r, now, config.alerts.stale_hours)) for r in found.records]
        if found.unreadable:
            view.problems.append(f"{name}: {len(found.unreadable)} records refused (damaged or foreign)")
        if found.truncated:
            view.problems.append(f"{name}: too many run records; read the first {fleet_service.MAX_OBJECTS}")
    return view
