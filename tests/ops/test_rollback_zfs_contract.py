"""`rollback` of a ZFS job through ops, against the recorded zfs command contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from amber.errors import RollbackRefused
from amber.ops.config.model import parse_config
from amber.ops.localsnap.rollback import RollbackRequest, rollback
from amber.services import session
from amber.sources.owners import OwnerRecord, Owners
from amber.sources.runner import Completed
from amber.sources.zfs import ZfsProvider
from tests.sources.fake_commands import Contract, ok
from tests.sources.test_zfs_contract import LIST_FS, LIST_SNAPS, NAME, SNAPS

NEWER = "amber-home-20261203T090000.000Z"


def plan(tmp_path: Path) -> list[tuple[list[str], Completed]]:
    """volume_of, volumes_below, list: the dataset tank/home is mounted at tmp_path/home."""
    datasets = f"tank\t/tank\ton\ntank/home\t{tmp_path / 'home'}\ton\n"
    return [(LIST_FS, ok(datasets)), (LIST_FS, ok(datasets)), (LIST_SNAPS, ok(SNAPS))]


def run(tmp_path: Path, contract: Contract, req: RollbackRequest) -> list[str]:
    (tmp_path / "home").mkdir(exist_ok=True)
    owners = Owners(str(tmp_path / "local-snapshots"))
    for name in (NAME, NEWER):  # both backed up by runs
        owners.save(OwnerRecord(name, "home", 1, "", "", state="kept", repository_snapshot="ab" * 32))
    cfg = parse_config(f"""
[repositories.main]
url = "{tmp_path / "repo"}"
[jobs.home]
paths = ["{tmp_path / "home"}"]
snapshot = "zfs"
[state]
path = "{tmp_path / "state.db"}"
""")
    return rollback(
        cfg, req, session.PasswordSource(), providers=lambda: {"zfs": ZfsProvider(contract)}
    ).steps


def test_dry_run_plans_the_newest_amber_snapshot(tmp_path: Path) -> None:
    contract = Contract(plan(tmp_path))
    steps = run(tmp_path, contract, RollbackRequest("home", dry_run=True))
    assert steps == [f"zfs rollback tank/home@{NEWER}"]
    assert contract.finished()


def test_refuses_to_destroy_newer_snapshots_unless_asked(tmp_path: Path) -> None:
    with pytest.raises(RollbackRefused, match="2 newer snapshot"):
        run(
            tmp_path,
            Contract([*plan(tmp_path), (LIST_SNAPS, ok(SNAPS))]),
            RollbackRequest("home", NAME, yes=True),
        )
    contract = Contract(
        [*plan(tmp_path), (LIST_SNAPS, ok(SNAPS)), (["zfs", "rollback", "-r", f"tank/home@{NAME}"], ok())]
    )
    run(tmp_path, contract, RollbackRequest("home", NAME, yes=True, destroy_newer=True))
    assert contract.finished()
