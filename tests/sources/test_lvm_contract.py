"""The LVM provider against a recorded command contract (no device-mapper on these machines)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

from amber.errors import LocalSnapshotError
from amber.sources.local import LocalSnapshots, Settings
from amber.sources.lvm import LvmProvider
from amber.sources.mounts import Mount, parse_mountinfo
from amber.sources.owners import Owners
from tests.sources.fake_commands import Contract, fails, ok

LVS = [
    "lvs",
    "--noheadings",
    "--nosuffix",
    "--units",
    "b",
    "--separator",
    "|",
    "-o",
    "vg_name,lv_name,lv_path,lv_dm_path,origin,lv_time,lv_size",
]
NAME = "amber-data-20261203T080000.000Z"
ROWS = (
    "  vg0|root|/dev/vg0/root|/dev/mapper/vg0-root||2026-01-01 00:00:00 +0000|10737418240\n"
    "  vg0|data|/dev/vg0/data|/dev/mapper/vg0-data||2026-01-01 00:00:00 +0000|5368709120\n"
)
SNAP_ROW = (
    f"  vg0|{NAME}.data|/dev/vg0/{NAME}.data|/dev/mapper/vg0-x|data|2026-12-03 08:00:00 +0000|536870912\n"
)
MOUNTINFO = (
    "22 1 253:0 / / rw - ext4 /dev/mapper/vg0-root rw\n"
    "23 22 253:1 / /srv/data rw - xfs /dev/mapper/vg0-data rw\n"
    "24 22 0:21 / /proc rw - proc proc rw\n"
)


def test_mountinfo_is_parsed_with_escapes() -> None:
    mounts = parse_mountinfo("36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 - ext3 /dev/root rw\n")
    assert mounts == [Mount("/mnt two", "/mnt1", "ext3", "/dev/root")]


def test_snapshot_mounts_read_only_and_is_removed(tmp_path: Path) -> None:
    table = parse_mountinfo(MOUNTINFO)
    snapdir = tmp_path / "snaps"
    target = str(snapdir / NAME / quote("/srv/data", safe=""))
    contract = Contract(
        [
            (LVS, ok(ROWS)),
            (
                [
                    "lvcreate",
                    "--snapshot",
                    "--permission",
                    "r",
                    "--extents",
                    "10%ORIGIN",
                    "--name",
                    f"{NAME}.data",
                    "vg0/data",
                ],
                ok(),
            ),
            (["mount", "-o", "ro,nouuid,norecovery", f"/dev/vg0/{NAME}.data", target], ok()),
            (LVS, ok(ROWS + SNAP_ROW)),
            (["umount", target], ok()),
            (["lvremove", "--yes", f"vg0/{NAME}.data"], ok()),
        ]
    )
    lvm = LvmProvider(contract, lambda: table)
    volume = lvm.volume_of("/srv/data/www")
    assert volume is not None and (volume.ident, volume.mountpoint) == ("vg0/data", "/srv/data")
    snap = lvm.create(volume, NAME, str(snapdir))
    assert snap.path == target and snap.handle == f"vg0/{NAME}.data"
    table.append(Mount(target, "/", "xfs", f"/dev/mapper/vg0-{NAME}.data"))
    listed = lvm.list(volume, str(snapdir))
    assert [(s.name, s.path, s.size) for s in listed] == [(NAME, target, 536870912)]
    lvm.delete(listed[0])
    assert contract.finished() and not (snapdir / NAME).exists()


def test_a_path_on_proc_is_not_an_lvm_volume() -> None:
    assert LvmProvider(Contract([]), lambda: parse_mountinfo(MOUNTINFO)).volume_of("/proc/self") is None


def test_no_device_mapper_is_an_amber_error() -> None:
    contract = Contract([(LVS, fails(5, "  /dev/mapper/control: open failed: No such device"))])
    with pytest.raises(LocalSnapshotError, match="lvs --noheadings --nosuffix failed"):
        LvmProvider(contract, lambda: parse_mountinfo(MOUNTINFO)).volume_of("/srv/data")


def test_cleanup_removes_pre_rollback_lvs_and_a_crashed_rollbacks_fresh_lv(tmp_path: Path) -> None:
    """LVs beside the origin named <amber name>.<lv>: a rollback's kept state, a crashed one's leftover."""
    pre, fresh = "amber-data-pre-rollback-20261203T100001.000Z", "amber-data-20261203T100000.000Z"
    live = tmp_path / "data"
    snapdir = live / ".amber-snapshots"  # the default: the fresh LV is mounted below the live one
    mounted = snapdir / fresh / quote(str(live), safe="")
    mounted.mkdir(parents=True)
    table = [
        Mount(str(live), "/", "xfs", "/dev/mapper/vg0-data"),
        Mount(str(mounted), "/", "xfs", f"/dev/mapper/vg0-{fresh}.data"),
    ]
    rows = ROWS + "".join(
        f"  vg0|{lv}|/dev/vg0/{lv}|/dev/mapper/vg0-x||2026-12-03 10:00:00 +0000|5368709120\n"
        for lv in (f"{pre}.data", f"{fresh}.data", f"{pre}.root")  # the last is another LV's
    )
    contract = Contract([
        (LVS, ok(rows)),  # volume_of
        (LVS, ok(rows)),  # cleanup lists
        (["umount", str(mounted)], ok()),
        (["lvremove", "--yes", f"vg0/{fresh}.data"], ok()),
        (["lvremove", "--yes", f"vg0/{pre}.data"], ok()),
    ])  # fmt: skip
    owners = Owners(str(tmp_path / "owners"))
    settings = Settings("lvm", 0)
    local = LocalSnapshots({"lvm": LvmProvider(contract, lambda: table)}, owners, settings, lambda: table)
    plan = local.plan([str(live)])
    assert [v.ident for _, v, _ in plan.volumes] == ["vg0/data"]  # its mount is not a nested volume
    assert local.cleanup(plan, "data") == ([fresh, pre], [])  # oldest name first
    assert contract.finished() and not (snapdir / fresh).exists()


@pytest.mark.parametrize(
    ("contract", "why"),
    [
        (Contract([(LVS, ok(ROWS))]), "{path} is not on a lvm volume: cannot snapshot it"),
        (Contract([]), "lvs is not installed (needed for filesystem snapshots)"),
    ],
    ids=["not-an-lv", "no-lvm-tools"],
)
def test_auto_on_a_filesystem_that_is_not_btrfs_or_zfs_says_why_lvm_was_tried(
    tmp_path: Path, contract: Contract, why: str
) -> None:
    def runner(argv: list[str]) -> object:
        if not contract.steps:
            raise LocalSnapshotError(f"{argv[0]} is not installed (needed for filesystem snapshots)")
        return contract(argv)

    plain = tmp_path / "plain"
    plain.mkdir()
    table = [Mount("/", "/", "ext4", "/dev/mapper/vg0-root"), Mount(str(plain), "/", "ext4", "/dev/sdb1")]
    owners = Owners(str(tmp_path / "owners"))
    local = LocalSnapshots(
        {"lvm": LvmProvider(runner, lambda: table)}, owners, Settings("auto"), lambda: table  # type: ignore[arg-type]
    )
    with pytest.raises(LocalSnapshotError) as caught:
        local.plan([str(plain)])
    why = why.format(path=plain)
    tried = f'snapshot = "auto": {plain} is on ext4, not Btrfs or ZFS, so LVM was tried'
    assert caught.value.message == f"{tried}: {why}"
