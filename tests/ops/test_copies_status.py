"""3-2-1-1-0: the pure rule (table-driven) and the status of real repositories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from amber.engine.rule321 import CopyFacts, Replica, Rule, evaluate
from amber.errors import UsageError
from amber.ops.copies_status import ReplicaSource, copies_status, parse_replica
from amber.repository import init_repository, open_repository
from amber.repository.crypto import KdfParams
from amber.services import session
from amber.services.backup import BackupRequest, backup_paths
from amber.services.copy import copy_snapshots
from amber.storage import FileType, open_backend

PW = "status test password"
HOME_DISK = Replica("disk", "disk")
USB = Replica("usb", "usb", offline=True)
NAS = Replica("nas", "nas")
CLOUD = Replica("cloud", "cloud", offsite=True, immutable=True)
CLOUD_MUTABLE = Replica("cloud2", "cloud", offsite=True)
GUARDED = "1 immutable or offline copy"
ONE_MEDIA = "1 more media type (have: disk)"


def ok(r: Replica) -> CopyFacts:
    return CopyFacts(r, 0)


@pytest.mark.parametrize(
    ("facts", "missing"),
    [
        ([ok(HOME_DISK), ok(USB), ok(CLOUD)], []),
        ([ok(HOME_DISK), ok(NAS), ok(CLOUD_MUTABLE), ok(USB)], []),
        ([ok(HOME_DISK), ok(CLOUD)], ["1 more copy"]),
        ([], ["3 more copies", "2 more media types (have: none)", "1 offsite copy", GUARDED]),
        ([ok(HOME_DISK), ok(Replica("d2")), ok(Replica("d3", offsite=True, offline=True))], [ONE_MEDIA]),
        ([ok(HOME_DISK), ok(USB), ok(NAS)], ["1 offsite copy"]),
        ([ok(HOME_DISK), ok(NAS), ok(CLOUD_MUTABLE)], ["1 immutable or offline copy"]),
        ([ok(HOME_DISK), CopyFacts(USB, 2), ok(CLOUD)], ["fix 2 verification errors"]),
        ([ok(HOME_DISK), CopyFacts(USB, None), CopyFacts(CLOUD)], ["verify 2 unchecked copies"]),
        ([ok(HOME_DISK), ok(HOME_DISK), ok(HOME_DISK)],  # one repository counts once
         ["2 more copies", ONE_MEDIA, "1 offsite copy", GUARDED]),
    ],
)
def test_rule(facts: list[CopyFacts], missing: list[str]) -> None:
    verdict = evaluate(facts)
    assert verdict.missing == missing
    assert verdict.passed is (not missing)


def test_rule_counts_and_custom_rule() -> None:
    v = evaluate([ok(HOME_DISK), CopyFacts(USB, 1), ok(CLOUD)])
    assert (v.copies, v.media, v.offsite, v.immutable_or_offline, v.errors, v.unverified) == (
        3, ["cloud", "disk", "usb"], 1, 2, 1, 0,
    )  # fmt: skip
    assert evaluate([ok(HOME_DISK), ok(CLOUD)], Rule(copies=2)).passed


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("/mnt/usb", Replica("/mnt/usb")),
        ("/mnt/usb,kind=usb,offline,name=usb", Replica("usb", "usb", offline=True)),
        ("s3:http://h/b, kind=cloud, offsite, immutable", Replica("s3:http://h/b", "cloud", True, True)),
    ],
)
def test_parse_replica(spec: str, expected: Replica) -> None:
    assert parse_replica(spec).replica == expected


@pytest.mark.parametrize("spec", ["", ",kind=usb", "/x,kind=tape", "/x,offsite=yes", "/x,colour"])
def test_parse_replica_rejects(spec: str) -> None:
    with pytest.raises(UsageError):
        parse_replica(spec)


class FakeHistory:
    """Stands in for the state database (which has its own tests)."""

    def __init__(self, copied: dict[str, set[str]], checks: dict[str, int]) -> None:
        self._copied, self._checks = copied, checks

    def copied(self, name: str) -> set[str]:
        return self._copied.get(name, set())

    def check_errors(self, name: str) -> int | None:
        return self._checks.get(name)


def test_status_of_real_replicas(tmp_path: Path) -> None:
    pw = session.PasswordSource(password_command=f"printf %s '{PW}'")
    paths = {n: tmp_path / n for n in ("main", "nas", "cloud", "usb")}
    for p in paths.values():
        init_repository(open_backend(str(p)), PW.encode(), KdfParams(1, 1024, 1)).close()
    repos = {n: open_repository(open_backend(str(p)), PW.encode()) for n, p in paths.items()}
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(os.urandom(100_000))
    first = backup_paths(repos["main"], BackupRequest(paths=[str(src)])).snapshot_id
    for n in ("nas", "cloud", "usb"):
        copy_snapshots(repos["main"], repos[n])
    second = backup_paths(repos["main"], BackupRequest(paths=[str(src)], force=True)).snapshot_id
    copy_snapshots(repos["main"], repos["nas"])
    replicas = [
        ReplicaSource(Replica("main", "ssd"), str(paths["main"]), pw),
        ReplicaSource(Replica("nas", "nas"), str(paths["nas"]), pw),
        ReplicaSource(Replica("cloud", "cloud", offsite=True, immutable=True), str(paths["cloud"]), pw),
        ReplicaSource(Replica("usb", "usb", offline=True), str(paths["usb"]), pw),
    ]
    report = copies_status(replicas, run_check=True)
    by_id = {s.identity: s for s in report.snapshots}
    assert by_id[first].verdict.passed and by_id[first].verdict.copies == 4
    assert by_id[second].verdict.copies == 2
    assert by_id[second].verdict.missing == ["1 more copy", "1 offsite copy", "1 immutable or offline copy"]
    assert not report.passed

    # damage in the cloud copy shows as verification errors for the snapshots there
    pack = next(repos["cloud"].backend.list(FileType.PACK))
    os.remove(next((paths["cloud"] / "data").rglob(pack.name)))
    report = copies_status(replicas, run_check=True)
    damaged = {s.identity: s.verdict for s in report.snapshots}[first]
    assert damaged.errors >= 1 and not damaged.passed
    assert any(m.startswith("fix ") for m in damaged.missing)

    # the USB disk is unplugged: without history its copies are gone, with history they count
    os.rename(paths["usb"], tmp_path / "usb-in-drawer")
    report = copies_status(replicas)
    assert [r.status for r in report.replicas] == ["ok", "ok", "ok", "unreachable"]
    first_verdict = {s.identity: s.verdict for s in report.snapshots}[first]
    assert first_verdict.copies == 3 and first_verdict.unverified == 3
    history = FakeHistory({"usb": {first}}, {"main": 0, "nas": 0, "cloud": 0, "usb": 0})
    report = copies_status(replicas, history=history)
    verdict = {s.identity: s for s in report.snapshots}[first]
    assert verdict.verdict.copies == 4 and verdict.verdict.unverified == 0
    assert ("usb", "(recorded)", 0) in verdict.holders
    for repo in repos.values():
        repo.close()
