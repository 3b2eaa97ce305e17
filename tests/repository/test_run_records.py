"""runs/<id>: run records round-trip, and what the storage hands back is not trusted."""

from __future__ import annotations

import hashlib

import msgspec
import pytest

from amber.errors import IntegrityError, ObjectTooLarge
from amber.repository import Repository
from amber.repository.limits import OBJECT_LIMITS
from amber.repository.run_records import (
    MAX_REASONS,
    MAX_RUNS,
    MAX_WRITTEN,
    FleetRecord,
    RunEntry,
    load_record,
    record_names,
    save_record,
)
from amber.repository.sealing import Kind
from amber.storage import FileType
from amber.storage.base import Handle

RUN = RunEntry(1000.0, 1060.0, "success", 5, 2)


def record(**changes: object) -> FleetRecord:
    base = FleetRecord("web1", "home", 2000.0, 3600.0, "protected", [], [RUN])
    return msgspec.structs.replace(base, **changes)


def plant(repo: Repository, plain: bytes) -> str:
    """What a key holder (or a buggy client) could store: sealed right, named right."""
    data = repo.sealer.seal(Kind.RUNS, plain)
    name = hashlib.sha256(data).hexdigest()
    repo.backend.save(Handle(FileType.RUNS, name), data)
    return name


def test_round_trip(repo: Repository) -> None:
    name = save_record(repo, record())
    assert record_names(repo) == [name]
    assert load_record(repo, name) == record()


@pytest.mark.parametrize("changes", [
    {"verdict": "fine"},
    {"host": ""},
    {"runs": [RUN] * (MAX_RUNS + 1)},
    {"runs": [msgspec.structs.replace(RUN, status="exploded")]},
    {"runs": [msgspec.structs.replace(RUN, bytes_added=-1)]},
    {"written": float("nan")},
    {"reasons": ["x" * 1000]},
    {"version": 2},
])  # fmt: skip
def test_what_amber_never_writes_is_refused_both_ways(repo: Repository, changes: dict[str, object]) -> None:
    bad = record(**changes)
    with pytest.raises(IntegrityError, match="unexpected shape"):
        save_record(repo, bad)
    name = plant(repo, msgspec.msgpack.encode(bad))
    with pytest.raises(IntegrityError, match=rf"run record {name[:8]}: run record of an unexpected shape"):
        load_record(repo, name)


def test_malformed_and_foreign_objects_are_refused(repo: Repository) -> None:
    garbage = plant(repo, b"\x93\x01\x02")
    with pytest.raises(IntegrityError, match="malformed"):
        load_record(repo, garbage)
    audit = repo.sealer.seal(Kind.AUDIT, msgspec.msgpack.encode(record()))  # bound to another kind
    name = hashlib.sha256(audit).hexdigest()
    repo.backend.save(Handle(FileType.RUNS, name), audit)
    with pytest.raises(IntegrityError):
        load_record(repo, name)


def test_renamed_or_oversized_objects_are_refused(repo: Repository) -> None:
    name = save_record(repo, record())
    data = repo.backend.load(Handle(FileType.RUNS, name))
    repo.backend.save(Handle(FileType.RUNS, "0" * 64), data)
    with pytest.raises(IntegrityError, match="does not match its name"):
        load_record(repo, "0" * 64)
    huge = "f" * 64
    repo.backend.save(Handle(FileType.RUNS, huge), b"\0" * (OBJECT_LIMITS[FileType.RUNS] + 1))
    with pytest.raises(ObjectTooLarge):
        load_record(repo, huge)


def test_the_largest_valid_record_fits_the_writers_limit(repo: Repository) -> None:
    wide = "\U0001f600" * 300  # 4 bytes a character in UTF-8
    long = msgspec.structs.replace(RUN, error=wide)
    largest = record(host="h" * 255, job="j" * 255, runs=[long] * MAX_RUNS, reasons=[wide] * MAX_REASONS)
    assert len(msgspec.msgpack.encode(largest)) <= MAX_WRITTEN < OBJECT_LIMITS[FileType.RUNS]
    assert load_record(repo, save_record(repo, largest)) == largest
