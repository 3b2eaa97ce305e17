"""`rollback` of a ZFS job through ops, against the recorded zfs command contract."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from amber.ops.config.model import Config, parse_config
from amber.ops.localsnap import rollback as rollback_module
from amber.ops.localsnap.inventory import cleanup
from amber.ops.localsnap.requests import RollbackRequest, RollbackResult
from amber.ops.localsnap.rollback import rollback
from amber.services import session
from amber.sources.changes import Changes
from amber.sources.owners import OwnerRecord, Owners
from amber.sources.runner import Completed
from amber.sources.zfs import ZfsProvider
from tests.sources.fake_commands import Contract, ok
from tests.sources.test_zfs_contract import LIST_FS, LIST_SNAPS, NAME, SNAPS

NEWER = "amber-home-20261203T090000.000Z"


def plan(tmp_path: Path, beside: str = "") -> list[tuple[list[str], Completed]]:
    """volume_of, volumes_below, list (snapshots, datasets beside): tank/home is mounted at tmp_path/home."""
    datasets = f"tank\t/tank\ton\ntank/home\t{tmp_path / 'home'}\ton\n"
    listed = [(LIST_SNAPS, ok(SNAPS)), (LIST_FS, ok(datasets + beside))]
    return [(LIST_FS, ok(datasets)), (LIST_FS, ok(datasets)), *listed]


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
    return rollback_result(tmp_path, contract, req, cfg).steps


def rollback_result(tmp_path: Path, contract: Contract, req: RollbackRequest, cfg: Config | None = None
                    ) -> RollbackResult:  # fmt: skip
    (tmp_path / "home").mkdir(exist_ok=True)
    cfg = cfg or parse_config(f"""
[repositories.main]
url = "{tmp_path / "repo"}"
[jobs.home]
paths = ["{tmp_path / "home"}"]
snapshot = "zfs"
[state]
path = "{tmp_path / "state.db"}"
""")
    return rollback(cfg, req, session.PasswordSource(), providers=lambda: {"zfs": ZfsProvider(contract)})


PRE = "amber-home-pre-rollback-20261203T093000.000Z"
LATER = "amber-home-pre-rollback-20261203T110000.000Z"


def test_undo_renames_the_pre_rollback_dataset_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--to the pre-rollback dataset a rollback from the repository kept: the live one moves aside again."""
    monkeypatch.setattr(rollback_module, "new_name", lambda _job, pre_rollback=False: LATER)
    home = tmp_path / "home"
    get = ["zfs", "get", "-H", "-p", "-r", "-t", "filesystem,volume", "-o", "name,value,source", "mountpoint"]
    live = f"tank/home\t{home}\tinherited from tank\ntank/home/proj\t{home}/proj\tlocal\n"
    pre = f"tank/home.{PRE}\tnone\tlocal\ntank/home.{PRE}/proj\tnone\tlocal\n"  # as a rollback left it
    contract = Contract([
        *plan(tmp_path, f"tank/home.{PRE}\tnone\ton\n"),
        ([*get, "tank/home"], ok(live)),
        ([*get, f"tank/home.{PRE}"], ok(pre)),
        (["zfs", "set", "mountpoint=none", "tank/home/proj"], ok()),
        (["zfs", "set", "mountpoint=none", "tank/home"], ok()),
        (["zfs", "rename", "tank/home", f"tank/home.{LATER}"], ok()),
        (["zfs", "rename", f"tank/home.{PRE}", "tank/home"], ok()),
        (["zfs", "inherit", "mountpoint", "tank/home"], ok()),
        (["zfs", "set", f"mountpoint={home}/proj", "tank/home/proj"], ok()),
    ])  # fmt: skip
    swap = [" ".join(step[0]) for step in contract.steps[-6:]]
    done = rollback_result(tmp_path, contract, RollbackRequest("home", PRE, yes=True))
    assert done.steps == swap and done.kept_as == f"tank/home.{LATER}"
    assert contract.finished()


def test_local_snapshots_cleanup_destroys_the_pre_rollback_dataset(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    datasets = f"tank\t/tank\ton\ntank/home\t{tmp_path / 'home'}\ton\n"
    beside = f"{datasets}tank/home.{PRE}\tnone\ton\n"
    contract = Contract([
        (LIST_FS, ok(datasets)),
        (LIST_FS, ok(datasets)),
        (LIST_SNAPS, ok()),
        (LIST_FS, ok(beside)),
        (["zfs", "destroy", "-r", f"tank/home.{PRE}"], ok()),
    ])  # fmt: skip
    cfg = parse_config(f"""
[repositories.main]
url = "{tmp_path / "repo"}"
[jobs.home]
paths = ["{tmp_path / "home"}"]
snapshot = "zfs"
[state]
path = "{tmp_path / "state.db"}"
""")
    assert cleanup(cfg, "home", lambda: {"zfs": ZfsProvider(contract)}) == [PRE]
    assert contract.finished()


def snapshot_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """The live dataset (tank/home at home) and where ZFS serves its snapshot NEWER, both with files."""
    owners = Owners(str(tmp_path / "local-snapshots"))
    for name in (NAME, NEWER):
        owners.save(OwnerRecord(name, "home", 1, "", "", state="kept", repository_snapshot="ab" * 32))
    home = tmp_path / "home"
    snap = home / ".zfs" / "snapshot" / NEWER
    for root in (home, snap):
        (root / "docs").mkdir(parents=True)
        (root / "keep.txt").write_text("same")
        (root / "docs" / "edit.txt").write_text("as snapshotted")
        os.utime(root / "keep.txt", ns=(10**18, 10**18))
        os.utime(root / "docs" / "edit.txt", ns=(10**18, 10**18))
    (snap / "gone.txt").write_text("deleted since")  # comes back: added
    (home / "new.txt").write_text("made since")  # goes: removed
    (home / "docs" / "edit.txt").write_text("edited since")  # modified
    return home, snap


def test_zfs_rollback_counts_the_live_dataset_against_its_snapshot_directory(tmp_path: Path) -> None:
    """--to latest is NEWER (no snapshot after it): `zfs rollback` without -r, changes counted before it."""
    snapshot_dirs(tmp_path)
    rollback_steps = [(LIST_SNAPS, ok(SNAPS)), (["zfs", "rollback", f"tank/home@{NEWER}"], ok())]
    dry = Contract(plan(tmp_path))
    planned = rollback_result(tmp_path, dry, RollbackRequest("home", dry_run=True))
    assert (planned.changes, planned.done, dry.finished()) == (Changes(1, 1, 1), False, True)
    contract = Contract([*plan(tmp_path), *rollback_steps])
    done = rollback_result(tmp_path, contract, RollbackRequest("home", yes=True))
    assert done.done and contract.finished() and done.changes == Changes(1, 1, 1)


def test_nested_datasets_are_counted_each_against_its_own_snapshot_and_summed(tmp_path: Path) -> None:
    home, snap = snapshot_dirs(tmp_path)
    proj = home / "docs"  # tank/home/proj: a dataset of its own, mounted at home/docs
    (snap / "docs" / "edit.txt").unlink()  # in tank/home's snapshot, docs is an empty mount point
    proj_snap = proj / ".zfs" / "snapshot" / NEWER
    proj_snap.mkdir(parents=True)
    (proj_snap / "edit.txt").write_text("as snapshotted")
    (proj_snap / "old.txt").write_text("back")
    datasets = f"tank\t/tank\ton\ntank/home\t{home}\ton\ntank/home/proj\t{proj}\ton\n"
    proj_snaps = [*LIST_SNAPS[:-1], "tank/home/proj"]
    proj_listed = ok(f"tank/home/proj@{NEWER}\t1796288400\t0\n")
    listing = [(LIST_FS, ok(datasets)), (LIST_FS, ok(datasets)), (LIST_SNAPS, ok(SNAPS)),
               (LIST_FS, ok(datasets)), (proj_snaps, proj_listed), (LIST_FS, ok(datasets))]  # fmt: skip
    contract = Contract([
        *listing,
        (LIST_SNAPS, ok(SNAPS)),
        (["zfs", "rollback", f"tank/home@{NEWER}"], ok()),
        (proj_snaps, proj_listed),
        (["zfs", "rollback", f"tank/home/proj@{NEWER}"], ok()),
    ])  # fmt: skip
    done = rollback_result(tmp_path, contract, RollbackRequest("home", yes=True))
    # home: gone.txt added, new.txt removed; proj: old.txt added, edit.txt modified
    assert done.done and contract.finished() and done.changes == Changes(2, 1, 1)


def test_an_unreadable_snapshot_directory_still_rolls_back(tmp_path: Path) -> None:
    _, snap = snapshot_dirs(tmp_path)
    shutil.rmtree(snap)  # nothing at .zfs/snapshot/<name> to read
    rollback_steps = [(LIST_SNAPS, ok(SNAPS)), (["zfs", "rollback", f"tank/home@{NEWER}"], ok())]
    contract = Contract([*plan(tmp_path), *rollback_steps])
    done = rollback_result(tmp_path, contract, RollbackRequest("home", yes=True))
    assert done.done and contract.finished() and done.changes is None
    assert done.not_counted == f"{snap} cannot be read: No such file or directory"
