"""The ZFS provider against a recorded command contract (no ZFS kernel module on these machines)."""

from __future__ import annotations

import pytest

from amber.errors import LocalSnapshotError, RollbackRefused
from amber.sources.zfs import ZfsProvider
from tests.sources.fake_commands import Contract, fails, ok

LIST_FS = ["zfs", "list", "-H", "-p", "-t", "filesystem", "-o", "name,mountpoint,canmount"]
DATASETS = (
    "tank\t/tank\ton\ntank/home\t/home\ton\ntank/home/me\t/home/me\ton\n"
    "tank/legacy\tlegacy\ton\ntank/off\t/home/off\toff\n"
)
LIST_SNAPS = [
    "zfs",
    "list",
    "-H",
    "-p",
    "-t",
    "snapshot",
    "-d",
    "1",
    "-s",
    "creation",
    "-o",
    "name,creation,used",
    "tank/home",
]
NAME = "amber-home-20261203T080000.000Z"
PRE = "amber-home-pre-rollback-20261203T083000.000Z"
SNAPS = (
    f"tank/home@{NAME}\t1796284800\t4096\n"
    "tank/home@autosnap_hourly\t1796288400\t0\n"
    "tank/home@amber-home-20261203T090000.000Z\t1796288400\t8192\n"
)


def test_volume_of_picks_the_deepest_mounted_dataset() -> None:
    contract = Contract([(LIST_FS, ok(DATASETS))] * 3)
    zfs = ZfsProvider(contract)
    home = zfs.volume_of("/home/you/x")
    assert home is not None and (home.ident, home.mountpoint, home.filesystem) == (
        "tank/home",
        "/home",
        "tank",
    )
    me = zfs.volume_of("/home/me")
    assert me is not None and me.ident == "tank/home/me"
    nested = zfs.volumes_below(home, "/home")
    assert [v.ident for v in nested] == [
        "tank/home/me"
    ]  # canmount=off and legacy are left to the mount check
    assert contract.finished()


def test_create_list_delete() -> None:
    contract = Contract(
        [
            (["zfs", "snapshot", f"tank/home@{NAME}"], ok()),
            (LIST_SNAPS, ok(SNAPS)),
            (LIST_FS, ok(DATASETS + f"tank/home.{PRE}\t/snaps/{PRE}\ton\ntank/homes.{PRE}\t/x\ton\n")),
            (["zfs", "destroy", f"tank/home@{NAME}"], ok()),
        ]
    )
    zfs = ZfsProvider(contract)
    from amber.sources.model import Volume

    home = Volume("zfs", "tank/home", "/home", "tank", "/home")
    snap = zfs.create(home, NAME, "/unused")
    assert snap.path == f"/home/.zfs/snapshot/{NAME}" and snap.handle == f"tank/home@{NAME}"
    listed = zfs.list(home, "/unused")
    assert [s.name for s in listed] == [NAME, "amber-home-20261203T090000.000Z", PRE]  # not autosnap_hourly
    assert (listed[2].handle, listed[2].path) == (f"tank/home.{PRE}", f"/snaps/{PRE}")  # not tank/homes.
    assert listed[0].size == 4096
    zfs.delete(snap)
    assert contract.finished()


def test_rollback_refuses_to_destroy_newer_snapshots_unless_asked() -> None:
    from amber.sources.model import Volume, VolumeSnapshot

    home = Volume("zfs", "tank/home", "/home", "tank", "/home")
    snap = VolumeSnapshot(NAME, home, "", f"tank/home@{NAME}")
    with pytest.raises(RollbackRefused, match="2 newer snapshot"):
        ZfsProvider(Contract([(LIST_SNAPS, ok(SNAPS))])).rollback(snap, destroy_newer=False)
    contract = Contract([(LIST_SNAPS, ok(SNAPS)), (["zfs", "rollback", "-r", f"tank/home@{NAME}"], ok())])
    ZfsProvider(contract).rollback(snap, destroy_newer=True)
    assert contract.finished()


def test_a_failing_zfs_command_is_an_amber_error() -> None:
    contract = Contract(
        [(LIST_FS, fails(1, "The ZFS modules are not loaded.\nTry running '/sbin/modprobe zfs'"))]
    )
    with pytest.raises(
        LocalSnapshotError, match=r"zfs list -H failed \(exit 1\): The ZFS modules are not loaded"
    ):
        ZfsProvider(contract).volume_of("/home")
