"""LocalSnapshots (plan, take, cleanup, owner records) driving the ZFS provider's command contract."""

from __future__ import annotations

from pathlib import Path

from amber.sources.local import LocalSnapshots, Settings
from amber.sources.owners import Owners
from amber.sources.zfs import ZfsProvider
from tests.sources.fake_commands import Contract, ok
from tests.sources.test_zfs_contract import LIST_FS, LIST_SNAPS

OLD, NEW = "amber-home-20261203T080000.000Z", "amber-home-20261203T090000.000Z"
PRE = "amber-home-pre-rollback-20261203T083000.000Z"
SNAPS = (
    f"tank/home@{OLD}\t1796284800\t4096\ntank/home@manual\t1796286000\t0\ntank/home@{NEW}\t1796288400\t0\n"
)


def test_a_run_snapshots_the_dataset_and_cleanup_keeps_the_newest(tmp_path: Path) -> None:
    home = tmp_path / "home"  # stands in for the dataset's mount point: backup paths must exist
    (home / "me").mkdir(parents=True)
    datasets = f"tank\t/tank\ton\ntank/home\t{home}\ton\n"
    pre_mount = tmp_path / "snaps" / PRE / "x"  # a pre-rollback dataset, left by a rollback from a repo
    pre_mount.mkdir(parents=True)
    contract = Contract(
        [
            (LIST_FS, ok(datasets)),  # volume_of
            (LIST_FS, ok(datasets)),  # volumes_below
            (["zfs", "snapshot", f"tank/home@{NEW}"], ok()),
            (LIST_SNAPS, ok(SNAPS)),  # cleanup lists; "manual" is not amber's
            (LIST_FS, ok(datasets + f"tank/home.{PRE}\t{pre_mount}\ton\n")),  # and the datasets beside
            (["zfs", "destroy", f"tank/home@{OLD}"], ok()),
            (["zfs", "destroy", "-r", f"tank/home.{PRE}"], ok()),
        ]
    )
    owners = Owners(str(tmp_path / "owners"))
    local = LocalSnapshots({"zfs": ZfsProvider(contract)}, owners, Settings("zfs", keep=1), lambda: [])
    plan = local.plan([str(home / "me")])
    taken = local.take(plan, NEW, "home")
    assert taken.source().read_path(bytes(home / "me" / "x")) == bytes(home / f".zfs/snapshot/{NEW}/me/x")
    assert taken.excludes() == []  # <home>/.amber-snapshots is not below <home>/me
    for name in (OLD, NEW):
        record = owners.get(name) or local.owners.get(NEW)
        assert record is not None
        record.name, record.state = name, "kept"
        owners.save(record)
    assert local.cleanup(plan, "home") == ([OLD, PRE], [])  # the pre-rollback state goes at the next cleanup
    assert contract.finished() and owners.names() == [NEW]
    assert not (tmp_path / "snaps" / PRE).exists()  # its emptied mount directories too
