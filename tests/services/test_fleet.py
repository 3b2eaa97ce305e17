"""services.fleet: publishing replaces a host's older record of a job; reading keeps the newest."""

from __future__ import annotations

import hashlib

import msgspec

from amber.repository import Repository
from amber.repository.run_records import FleetRecord, RunEntry, record_names
from amber.repository.sealing import Kind
from amber.services import fleet
from amber.storage import FileType
from amber.storage.base import Handle

DAY = 86400.0


def rec(host: str, job: str, written: float, verdict: str = "protected") -> FleetRecord:
    run = RunEntry(max(written - 60, 0.0), written, "success")
    return FleetRecord(host, job, written, DAY, verdict, [], [run])


def test_publish_replaces_only_this_hosts_older_record_of_the_job(repo: Repository) -> None:
    now = 100 * DAY
    fleet.publish(repo, rec("a", "home", now - 10), now)
    fleet.publish(repo, rec("a", "etc", now - 10), now)
    fleet.publish(repo, rec("b", "home", now - 10), now)
    name, removed = fleet.publish(repo, rec("a", "home", now, "at-risk"), now)
    assert removed == 1 and len(record_names(repo)) == 3 and name in record_names(repo)
    found = fleet.fleet(repo)
    assert [(r.host, r.job, r.verdict) for r in found.records] == [
        ("a", "etc", "protected"), ("a", "home", "at-risk"), ("b", "home", "protected")]  # fmt: skip


def test_records_older_than_the_keep_window_are_pruned(repo: Repository) -> None:
    now = 200 * DAY
    fleet.publish(repo, rec("gone", "home", now - fleet.KEEP_SECONDS - DAY), now - fleet.KEEP_SECONDS)
    fleet.publish(repo, rec("quiet", "home", now - 30 * DAY), now - 30 * DAY)
    _, removed = fleet.publish(repo, rec("a", "home", now), now)
    assert removed == 1
    assert sorted(r.host for r in fleet.fleet(repo).records) == ["a", "quiet"]


def test_reading_skips_and_counts_what_it_cannot_trust(repo: Repository) -> None:
    fleet.publish(repo, rec("a", "home", 10.0), 10.0)
    repo.backend.save(Handle(FileType.RUNS, "0" * 64), b"not sealed")
    foreign = msgspec.structs.replace(rec("x", "y", 500.0), verdict="fine")
    sealed = repo.sealer.seal(Kind.RUNS, msgspec.msgpack.encode(foreign))
    repo.backend.save(Handle(FileType.RUNS, hashlib.sha256(sealed).hexdigest()), sealed)
    found = fleet.fleet(repo)
    assert [r.host for r in found.records] == ["a"] and len(found.unreadable) == 2
    assert not found.truncated


def test_an_older_record_left_behind_never_wins(repo: Repository) -> None:
    # an append-only repository keeps superseded records: the reader still shows the newest
    fleet.publish(repo, rec("a", "home", 50.0, "unprotected"), 50.0)
    from amber.repository.run_records import save_record

    save_record(repo, rec("a", "home", 40.0))
    assert [r.verdict for r in fleet.fleet(repo).records] == ["unprotected"]
