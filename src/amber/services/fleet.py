"""The fleet view's use cases: publish this host's run record for a job, and read every host's.

Publishing saves the new record first, then removes this host's older records
of the same job and any record older than ``KEEP_SECONDS`` (a host that
stopped reporting long ago). Removal is best effort: an append-only or
Object Lock repository keeps the old ones, and readers take the newest per
host and job. Reading skips what it cannot trust and names it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from amber.errors import AppendOnlyViolation, IntegrityError, NotFound, StorageError
from amber.repository.repo import Repository
from amber.repository.run_records import FleetRecord, load_record, record_names, remove_record, save_record

KEEP_SECONDS = 90 * 86400.0
MAX_OBJECTS = 5000  # records read per repository: a planted flood must not stall the page


@dataclass
class Fleet:
    records: list[FleetRecord]  # the newest per (host, job), sorted by host then job
    unreadable: list[str] = field(default_factory=list)  # names of records refused
    truncated: bool = False  # more than MAX_OBJECTS records: only the first were read


def _read(repo: Repository) -> tuple[dict[str, FleetRecord], list[str], bool]:
    names = record_names(repo)
    found: dict[str, FleetRecord] = {}
    unreadable: list[str] = []
    for name in names[:MAX_OBJECTS]:
        try:
            found[name] = load_record(repo, name)
        except NotFound:  # removed by its writer since the listing
            continue
        except IntegrityError:
            unreadable.append(name)
    return found, unreadable, len(names) > MAX_OBJECTS


def publish(repo: Repository, record: FleetRecord, now: float) -> tuple[str, int]:
    """Save ``record``; returns its name and how many superseded or expired records were removed."""
    name = save_record(repo, record)
    found, _unreadable, _ = _read(repo)
    removed = 0
    for other, old in found.items():
        superseded = (old.host, old.job) == (record.host, record.job) and old.written <= record.written
        if other != name and (superseded or old.written < now - KEEP_SECONDS):
            try:
                remove_record(repo, other)
                removed += 1
            except (AppendOnlyViolation, StorageError, NotFound):  # append-only, locked, gone: readers cope
                pass
    return name, removed


def fleet(repo: Repository) -> Fleet:
    found, unreadable, truncated = _read(repo)
    newest: dict[tuple[str, str], FleetRecord] = {}
    for record in found.values():
        key = (record.host, record.job)
        if key not in newest or record.written > newest[key].written:
            newest[key] = record
    return Fleet([newest[k] for k in sorted(newest)], unreadable, truncated)
