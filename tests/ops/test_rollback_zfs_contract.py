"""`rollback` of a ZFS job through ops, against the recorded zfs command contract."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import pytest

from amber.errors import AmberError, RollbackRefused
from amber.ops.config.model import Config, parse_config
from amber.ops.localsnap import from_repo as from_repo_module
from amber.ops.localsnap.requests import RollbackRequest
from amber.ops.localsnap.rollback import rollback
from amber.services import session
from amber.services.backup import BackupRequest, backup_paths
from amber.sources.owners import OwnerRecord, Owners
from amber.sources.runner import Completed
from amber.sources.zfs import ZfsProvider
from tests.conftest import PASSWORD
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


FRESH = "amber-home-20261203T100000.000Z"
PRE = "amber-home-pre-rollback-20261203T100001.000Z"


@pytest.fixture
def fixed_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fresh dataset's and the pre-rollback state's names, which the contract spells out."""
    monkeypatch.setattr(
        from_repo_module, "new_name", lambda _job, pre_rollback=False: PRE if pre_rollback else FRESH
    )


def from_repo_setup(tmp_path: Path) -> tuple[Config, str]:
    """A repository with a backup of tmp_path/home, then home changed; a ZFS job for it."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "kept.txt").write_text("backed up")
    (home / "sub").mkdir()
    (home / "sub" / "deep.bin").write_bytes(os.urandom(70_000))
    repo = session.create(str(tmp_path / "repo"), PASSWORD.encode())
    try:
        snapshot_id = backup_paths(repo, BackupRequest(paths=[str(home)])).snapshot_id
    finally:
        repo.close()
    (home / "kept.txt").write_text("changed since")
    (tmp_path / "pass").write_text(PASSWORD + "\n")
    cfg = parse_config(f"""
[repositories.main]
url = "{tmp_path / "repo"}"
password_file = "{tmp_path / "pass"}"
[jobs.home]
paths = ["{home}"]
snapshot = "zfs"
[state]
path = "{tmp_path / "state.db"}"
""")
    return cfg, snapshot_id


@pytest.mark.usefixtures("fixed_names")
def test_from_repo_restores_into_a_fresh_dataset_then_renames(tmp_path: Path) -> None:
    cfg, snapshot_id = from_repo_setup(tmp_path)
    home = str(tmp_path / "home")
    fresh_mount = f"{home}/.amber-snapshots/{FRESH}/{quote(home, safe='')}"
    pre_mount = f"{home}/.amber-snapshots/{PRE}/{quote(home, safe='')}"
    contract = Contract([
        *plan(tmp_path),
        (["zfs", "create", "-o", f"mountpoint={fresh_mount}", f"tank/home.{FRESH}"], ok()),
        (["zfs", "get", "-H", "-o", "source", "mountpoint", "tank/home"], ok("inherited from tank\n")),
        (["zfs", "rename", "tank/home", f"tank/home.{PRE}"], ok()),
        (["zfs", "set", f"mountpoint={pre_mount}", f"tank/home.{PRE}"], ok()),
        (["zfs", "rename", f"tank/home.{FRESH}", "tank/home"], ok()),
        (["zfs", "inherit", "mountpoint", "tank/home"], ok()),
    ])  # fmt: skip
    req = RollbackRequest("home", from_repo=snapshot_id[:8], yes=True)
    done = rollback(cfg, req, session.PasswordSource(), providers=lambda: {"zfs": ZfsProvider(contract)})
    assert done.done and contract.finished() and done.kept_as == f"tank/home.{PRE}"
    restored = Path(fresh_mount)  # what the fresh dataset held before the renames: verified while restored
    assert (restored / "kept.txt").read_text() == "backed up"
    assert (restored / "sub" / "deep.bin").stat().st_size == 70_000


@pytest.mark.usefixtures("fixed_names")
def test_from_repo_dry_run_and_a_failed_restore_destroys_the_fresh_dataset(tmp_path: Path) -> None:
    cfg, snapshot_id = from_repo_setup(tmp_path)
    home = str(tmp_path / "home")
    fresh_mount = f"{home}/.amber-snapshots/{FRESH}/{quote(home, safe='')}"
    dry = Contract(plan(tmp_path))
    req = RollbackRequest("home", from_repo=snapshot_id[:8], dry_run=True)
    steps = rollback(cfg, req, session.PasswordSource(), providers=lambda: {"zfs": ZfsProvider(dry)}).steps
    assert "into a new dataset" in steps[0] and dry.finished()
    Path(fresh_mount).parent.mkdir(parents=True)
    Path(fresh_mount).write_text("a file where the restore target must go")  # the restore cannot start
    contract = Contract([
        *plan(tmp_path),
        (["zfs", "create", "-o", f"mountpoint={fresh_mount}", f"tank/home.{FRESH}"], ok()),
        (["zfs", "destroy", "-r", f"tank/home.{FRESH}"], ok()),
    ])  # fmt: skip
    req = RollbackRequest("home", from_repo=snapshot_id[:8], yes=True)
    with pytest.raises(AmberError):
        rollback(cfg, req, session.PasswordSource(), providers=lambda: {"zfs": ZfsProvider(contract)})
    assert contract.finished()
