"""Run records in the repository (``runs/<id>``): each host's recent runs of each job, for the fleet view.

One object per (host, job): the host's verdict for the job and its last runs,
sealed like snapshots and named by the SHA-256 of the sealed bytes. The writer
replaces its own older record after saving the new one (services.fleet). The
storage is not trusted: loads are bounded, the name is checked against the
content, and the decoded record must fit its schema and limits, or it is
refused as an ``IntegrityError`` naming it.
"""

from __future__ import annotations

import hashlib
import math

import msgspec

from amber.errors import IntegrityError, ObjectTooLarge
from amber.repository.limits import KIB, OBJECT_LIMITS
from amber.repository.repo import Repository
from amber.repository.sealing import Kind
from amber.storage.base import FileType, Handle

VERSION = 1
MAX_WRITTEN = 64 * KIB  # the writer's limit; readers allow OBJECT_LIMITS[RUNS] (4x)
MAX_RUNS = 30  # runs kept per record, newest first
MAX_REASONS = 12
MAX_TEXT = 300  # characters of a reason or an error
MAX_NAME = 255  # host and job names
MAX_SECONDS = 1e11  # times (Unix seconds, year 5138) and intervals: later ones no datetime can show
STATUSES = ("success", "partial", "failed", "interrupted", "running")
VERDICTS = ("protected", "at-risk", "unprotected")


class RunEntry(msgspec.Struct, frozen=True):
    started: float
    ended: float
    status: str
    bytes_added: int = 0
    files: int = 0
    errors: int = 0
    error: str = ""  # the first error, credentials already masked


class FleetRecord(msgspec.Struct, frozen=True):
    host: str
    job: str
    written: float  # when the host wrote it (its clock)
    interval: float  # seconds between the job's scheduled runs; 0 = unscheduled
    verdict: str
    reasons: list[str]
    runs: list[RunEntry]  # newest first
    version: int = VERSION


def validate(record: FleetRecord) -> None:
    """Refuse what amber never writes: unknown values, unbounded lists or texts, odd numbers."""
    problems = []
    if record.version != VERSION:
        problems.append(f"version {record.version}")
    if not 0 < len(record.host) <= MAX_NAME or not 0 < len(record.job) <= MAX_NAME:
        problems.append("host or job name")
    if record.verdict not in VERDICTS:
        problems.append("verdict")
    if len(record.reasons) > MAX_REASONS or any(len(r) > MAX_TEXT for r in record.reasons):
        problems.append("reasons")
    if len(record.runs) > MAX_RUNS:
        problems.append(f"{len(record.runs)} runs")
    numbers, seconds = [record.written, record.interval], [record.written, record.interval]
    for run in record.runs:
        numbers += [run.started, run.ended, run.bytes_added, run.files, run.errors]
        seconds += [run.started, run.ended]
        if run.status not in STATUSES or len(run.error) > MAX_TEXT:
            problems.append("run status or error")
    if any(not math.isfinite(n) or n < 0 for n in numbers):
        problems.append("a negative or non-finite number")
    elif any(n > MAX_SECONDS for n in seconds):
        problems.append("a time after the year 5000")
    if problems:
        raise IntegrityError(f"run record of an unexpected shape ({', '.join(problems[:3])})")


def save_record(repo: Repository, record: FleetRecord) -> str:
    validate(record)
    plain = msgspec.msgpack.encode(record)
    if len(plain) > MAX_WRITTEN:
        raise ObjectTooLarge(f"run record of {len(plain)} bytes is over the {MAX_WRITTEN}-byte limit")
    data = repo.sealer.seal(Kind.RUNS, plain)
    name = hashlib.sha256(data).hexdigest()
    repo.backend.save(Handle(FileType.RUNS, name), data)
    return name


def load_record(repo: Repository, name: str) -> FleetRecord:
    raw = repo.backend.load(Handle(FileType.RUNS, name), limit=OBJECT_LIMITS[FileType.RUNS])
    if hashlib.sha256(raw).hexdigest() != name:
        raise IntegrityError(f"run record {name[:8]}: content does not match its name")
    try:
        record = msgspec.msgpack.decode(repo.sealer.open(Kind.RUNS, raw), type=FleetRecord)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise IntegrityError(f"run record {name[:8]} is malformed") from exc
    try:
        validate(record)
    except IntegrityError as exc:
        raise IntegrityError(f"run record {name[:8]}: {exc.message}") from exc
    return record


def record_names(repo: Repository) -> list[str]:
    return sorted(fi.name for fi in repo.backend.list(FileType.RUNS))


def remove_record(repo: Repository, name: str) -> None:
    repo.backend.remove(Handle(FileType.RUNS, name))
