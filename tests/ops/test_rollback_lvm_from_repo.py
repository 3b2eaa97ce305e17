"""`rollback --from-repo` of an LVM job: a fresh LV, mkfs, restore, verify, lvrename swap.

Against a recorded command contract: these machines have no device-mapper, so
the lvcreate/mkfs/mount/lvrename argv and outputs are what LVM's and
util-linux's manual pages give; this never ran on a real kernel. The restore
and its checks are real, into the directory where the fresh LV would be mounted.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import pytest

from amber.errors import AmberError, IntegrityError, LocalSnapshotError, RollbackRefused
from amber.ops.config.model import Config, parse_config
from amber.ops.localsnap import from_repo as from_repo_module
from amber.ops.localsnap.requests import RollbackRequest, RollbackResult
from amber.ops.localsnap.rollback import rollback
from amber.services import session
from amber.services.backup import BackupRequest, backup_paths
from amber.sources.changes import Changes
from amber.sources.lvm import LvmProvider
from amber.sources.lvm_fresh import plan_fresh_lv
from amber.sources.model import Volume
from amber.sources.mounts import Mount
from amber.sources.owners import Owners
from tests.conftest import PASSWORD
from tests.ops.test_rollback_zfs_from_repo import damage_largest_pack
from tests.sources.fake_commands import Contract, Step, fails, ok
from tests.sources.test_lvm_contract import LVS

FRESH = "amber-data-20261203T100000.000Z"
PRE = "amber-data-pre-rollback-20261203T100001.000Z"
ORIGIN = "  vg0|data|/dev/vg0/data|/dev/mapper/vg0-data||2026-01-01 00:00:00 +0000|5368709120\n"
BLKID = ["blkid", "-o", "export", "/dev/vg0/data"]
UUID = "0b5e1a52-6f0c-4d2e-9d44-2f4c1f9c7a10"
FS = f"DEVNAME=/dev/vg0/data\nUUID={UUID}\nBLOCK_SIZE=4096\nTYPE=ext4\nLABEL=data\n"


@pytest.fixture(autouse=True)
def fixed_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        from_repo_module, "new_name", lambda _job, pre_rollback=False: PRE if pre_rollback else FRESH
    )


def setup(tmp_path: Path) -> tuple[Config, str, str]:
    """A backup of the LV's mount point (ext4, vg0/data); then the live tree changed."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "kept.txt").write_text("backed up")
    (data / "sub").mkdir()
    (data / "sub" / "deep.bin").write_bytes(os.urandom(70_000))
    repo = session.create(str(tmp_path / "repo"), PASSWORD.encode())
    try:
        snapshot_id = backup_paths(repo, BackupRequest(paths=[str(data)])).snapshot_id
    finally:
        repo.close()
    (data / "kept.txt").write_text("changed since")
    (tmp_path / "pass").write_text(PASSWORD + "\n")
    cfg = parse_config(f"""
[repositories.main]
url = "{tmp_path / "repo"}"
password_file = "{tmp_path / "pass"}"
[jobs.data]
paths = ["{data}"]
snapshot = "lvm"
[state]
path = "{tmp_path / "state.db"}"
""")
    return cfg, snapshot_id, str(data)


def reads(live: str, fs: str = FS) -> list[Step]:
    """volume_of and list (lvs), then what the plan reads: the size (lvs), blkid, findmnt."""
    return [
        (LVS, ok(ORIGIN)),
        (LVS, ok(ORIGIN)),
        (LVS, ok(ORIGIN)),
        (BLKID, ok(fs)),
        (["findmnt", "-n", "-r", "-o", "OPTIONS", "--mountpoint", live], ok("rw,relatime,seclabel\n")),
    ]


def fresh_dir(live: str) -> str:
    return f"{live}/.amber-snapshots/{FRESH}/{quote(live, safe='')}"


def build(live: str) -> list[Step]:
    return [
        (["lvcreate", "--yes", "--name", f"{FRESH}.data", "--size", "5368709120b", "vg0"], ok()),
        (["mkfs", "-t", "ext4", "-q", "-U", "0b5e1a52-6f0c-4d2e-9d44-2f4c1f9c7a10", "-L", "data",
          f"/dev/vg0/{FRESH}.data"], ok()),
        (["mount", "-t", "ext4", f"/dev/vg0/{FRESH}.data", fresh_dir(live)], ok()),
    ]  # fmt: skip


MOUNT_LIVE = ["mount", "-t", "ext4", "-o", "rw,relatime", "/dev/vg0/data"]


def roll(cfg: Config, live: str, contract: Contract, req: RollbackRequest,
         table: list[Mount] | None = None) -> RollbackResult:  # fmt: skip
    mounts = table or [Mount(live, "/", "ext4", "/dev/mapper/vg0-data")]
    provider = LvmProvider(contract, lambda: mounts)
    return rollback(cfg, req, session.PasswordSource(), providers=lambda: {"lvm": provider})


def test_restores_into_a_fresh_lv_then_swaps_names_around_the_hooks(tmp_path: Path) -> None:
    cfg, snapshot_id, live = setup(tmp_path)
    Path(live, "new.txt").write_text("made since")  # the rollback removes it
    Path(live, "sub", "deep.bin").unlink()  # and adds it back; kept.txt was modified since
    marks = tmp_path / "marks"
    swap = [
        (["umount", live], ok(), lambda: marks.open("a").write("umount\n")),
        (["lvrename", "vg0", "data", f"{PRE}.data"], ok()),
        (["lvrename", "vg0", f"{FRESH}.data", "data"], ok()),
        ([*MOUNT_LIVE, live], ok()),
    ]
    keep_aside = [
        (["lvchange", "--setactivationskip", "y", f"vg0/{PRE}.data"], ok()),
        (["lvchange", "--activate", "n", f"vg0/{PRE}.data"], ok()),
    ]
    dry = Contract(reads(live))
    planned = roll(cfg, live, dry, RollbackRequest("data", from_repo=snapshot_id[:8], dry_run=True))
    everything = [*build(live), (["umount", fresh_dir(live)], ok()), *swap, *keep_aside]
    assert [s for s in planned.steps if not s.startswith("restore ")] == [" ".join(s[0]) for s in everything]
    assert dry.finished() and planned.changes == Changes(1, 1, 1)  # live against the repository's tree
    contract = Contract([*reads(live), *everything])
    req = RollbackRequest("data", from_repo=snapshot_id[:8], yes=True,
                          stop=[f"echo stop >> {marks}"], start=[f"echo start >> {marks}"])  # fmt: skip
    done = roll(cfg, live, contract, req)
    assert done.done and contract.finished() and done.kept_as == f"vg0/{PRE}.data"
    assert done.changes == Changes(1, 1, 1)  # live against the restored LV, counted while it was mounted
    assert marks.read_text() == "stop\numount\nstart\n"  # the swap runs between the hooks
    restored = Path(fresh_dir(live))  # what the fresh LV held when it was unmounted
    assert (restored / "kept.txt").read_text() == "backed up"
    assert (restored / "sub" / "deep.bin").stat().st_size == 70_000
    assert Owners(str(tmp_path / "local-snapshots")).names() == []  # no leftover for cleanup


def test_xfs_gets_its_uuid_through_m_and_mounts_beside_the_origin_with_nouuid(tmp_path: Path) -> None:
    cfg, snapshot_id, live = setup(tmp_path)
    dry = Contract(reads(live, FS.replace("ext4", "xfs").replace("LABEL=data\n", "")))
    steps = roll(cfg, live, dry, RollbackRequest("data", from_repo=snapshot_id[:8], dry_run=True)).steps
    assert steps[1] == (f"mkfs -t xfs -q -m uuid=0b5e1a52-6f0c-4d2e-9d44-2f4c1f9c7a10 /dev/vg0/{FRESH}.data")
    assert steps[2] == f"mount -t xfs -o nouuid /dev/vg0/{FRESH}.data {fresh_dir(live)}"


REMOVE = (["lvremove", "--yes", f"vg0/{FRESH}.data"], ok())


def test_a_failed_lvcreate_or_mkfs_leaves_nothing_behind(tmp_path: Path) -> None:
    cfg, snapshot_id, live = setup(tmp_path)
    req = RollbackRequest("data", from_repo=snapshot_id[:8], yes=True)
    no_space = fails(5, '  Volume group "vg0" has insufficient free space (10 extents): 1280 required.')
    contract = Contract([*reads(live), (build(live)[0][0], no_space)])
    with pytest.raises(LocalSnapshotError, match=r"lvcreate --yes --name failed.*insufficient free") as e:
        roll(cfg, live, contract, req)
    assert e.value.exit_code == 32 and contract.finished()
    mkfs_fails = (build(live)[1][0], fails(1, "mkfs.ext4: bad"))
    contract = Contract([*reads(live), build(live)[0], mkfs_fails, REMOVE])
    with pytest.raises(LocalSnapshotError, match="mkfs -t ext4 failed"):
        roll(cfg, live, contract, req)
    assert contract.finished() and Path(live, "kept.txt").read_text() == "changed since"


def test_a_restore_failing_mid_way_removes_the_fresh_lv(tmp_path: Path) -> None:
    cfg, snapshot_id, live = setup(tmp_path)
    damaged = (build(live)[2][0], ok(), lambda: damage_largest_pack(tmp_path / "repo"))
    unmount = (["umount", fresh_dir(live)], ok())
    contract = Contract([*reads(live), *build(live)[:2], damaged, unmount, REMOVE])
    with pytest.raises(IntegrityError, match="could not be restored intact") as e:
        roll(cfg, live, contract, RollbackRequest("data", from_repo=snapshot_id[:8], yes=True))
    assert e.value.exit_code == 14 and contract.finished()
    assert Path(live, "kept.txt").read_text() == "changed since"


def test_a_restored_tree_that_differs_is_never_swapped_in(tmp_path: Path) -> None:
    """The new filesystem already held a file (mkfs did not give an empty one): the check refuses it."""
    cfg, snapshot_id, live = setup(tmp_path)
    stale = (build(live)[2][0], ok(), lambda: Path(fresh_dir(live), "stale.txt").write_text("old"))
    unmount = (["umount", fresh_dir(live)], ok())
    contract = Contract([*reads(live), *build(live)[:2], stale, unmount, REMOVE])
    with pytest.raises(LocalSnapshotError, match=r"differs from snapshot .*/stale.txt is not in the"):
        roll(cfg, live, contract, RollbackRequest("data", from_repo=snapshot_id[:8], yes=True))
    assert contract.finished()


def test_a_busy_live_filesystem_changes_nothing_and_the_services_start_again(tmp_path: Path) -> None:
    cfg, snapshot_id, live = setup(tmp_path)
    marks = tmp_path / "marks"
    contract = Contract([
        *reads(live), *build(live), (["umount", fresh_dir(live)], ok()),
        (["umount", live], fails(32, f"umount: {live}: target is busy.")),
        REMOVE,
    ])  # fmt: skip
    req = RollbackRequest("data", from_repo=snapshot_id[:8], yes=True,
                          stop=[f"echo stop >> {marks}"], start=[f"echo start >> {marks}"])  # fmt: skip
    with pytest.raises(LocalSnapshotError, match=f"target is busy.; {live} was not changed"):
        roll(cfg, live, contract, req)
    assert contract.finished() and marks.read_text() == "stop\nstart\n"


def test_a_failed_mount_after_the_renames_undoes_them_in_reverse(tmp_path: Path) -> None:
    cfg, snapshot_id, live = setup(tmp_path)
    contract = Contract([
        *reads(live), *build(live), (["umount", fresh_dir(live)], ok()),
        (["umount", live], ok()),
        (["lvrename", "vg0", "data", f"{PRE}.data"], ok()),
        (["lvrename", "vg0", f"{FRESH}.data", "data"], ok()),
        ([*MOUNT_LIVE, live], fails(32, "mount: wrong fs type, bad option, bad superblock")),
        (["lvrename", "vg0", "data", f"{FRESH}.data"], ok()),
        (["lvrename", "vg0", f"{PRE}.data", "data"], ok()),
        ([*MOUNT_LIVE, live], ok()),  # the origin, under its own name again
        REMOVE,
    ])  # fmt: skip
    with pytest.raises(AmberError, match=f"bad superblock; {live} was not changed"):
        roll(cfg, live, contract, RollbackRequest("data", from_repo=snapshot_id[:8], yes=True))
    assert contract.finished()


def test_refused_before_any_change_root_other_filesystems_nested_volumes(tmp_path: Path) -> None:
    cfg, snapshot_id, live = setup(tmp_path)
    req = RollbackRequest("data", from_repo=snapshot_id[:8], yes=True)
    contract = Contract(reads(live, FS.replace("ext4", "vfat"))[:4])
    with pytest.raises(RollbackRefused, match=r"vg0/data holds vfat: .* only ext2, ext3, ext4, xfs") as e:
        roll(cfg, live, contract, req)
    assert e.value.exit_code == 33 and contract.finished()
    inner = f"{live}/sub"
    table = [Mount(live, "/", "ext4", "/dev/mapper/vg0-data"), Mount(inner, "/", "xfs", "/dev/vg0/sub")]
    sub = "  vg0|sub|/dev/vg0/sub|/dev/mapper/vg0-sub||2026-01-01 00:00:00 +0000|1073741824\n"
    contract = Contract([(LVS, ok(ORIGIN + sub))] * 4)  # volume_of, volumes_below, list of each
    with pytest.raises(RollbackRefused, match=f"{inner} is another logical volume mounted inside"):
        roll(cfg, live, contract, req, table)
    assert contract.finished()


def test_a_root_filesystem_gets_the_plan() -> None:
    contract = Contract(reads("/")[2:])
    root = Volume("lvm", "vg0/data", "/", "vg0", "/")
    plan = f"lvrename vg0 data {PRE}.data; lvrename vg0 {FRESH}.data data; reboot"
    with pytest.raises(RollbackRefused, match=rf"^/ cannot be unmounted .* lvcreate .*rescue system: {plan}"):
        plan_fresh_lv(LvmProvider(contract, lambda: []), root, [], FRESH, PRE, "/.amber-snapshots")
    assert contract.finished()


def test_when_the_second_lvs_swap_fails_the_first_is_put_back_and_both_fresh_lvs_removed(
    tmp_path: Path,
) -> None:
    """A job on two LVs (vg0/data, vg0/logs): the swaps are all or none."""
    data, logs = tmp_path / "data", tmp_path / "logs"
    for top in (data, logs):
        top.mkdir()
        (top / "f.txt").write_text(f"in {top.name}")
    repo = session.create(str(tmp_path / "repo"), PASSWORD.encode())
    try:
        snapshot_id = backup_paths(repo, BackupRequest(paths=[str(data), str(logs)])).snapshot_id
    finally:
        repo.close()
    (tmp_path / "pass").write_text(PASSWORD + "\n")
    cfg = parse_config(f"""
[repositories.main]
url = "{tmp_path / "repo"}"
password_file = "{tmp_path / "pass"}"
[jobs.data]
paths = ["{data}", "{logs}"]
snapshot = "lvm"
[state]
path = "{tmp_path / "state.db"}"
""")
    rows = ORIGIN + "  vg0|logs|/dev/vg0/logs|/dev/mapper/vg0-logs||2026-01-01 00:00:00 +0000|1073741824\n"
    table = [Mount(str(top), "/", "ext4", f"/dev/mapper/vg0-{top.name}") for top in (data, logs)]
    findmnt = ["findmnt", "-n", "-r", "-o", "OPTIONS", "--mountpoint"]
    mount_logs = ["mount", "-t", "ext4", "-o", "rw,relatime", "/dev/vg0/logs", str(logs)]
    fresh_logs = fresh_dir(str(logs))
    contract = Contract([
        *[(LVS, ok(rows))] * 4,  # volume_of of each path, list of each LV
        (LVS, ok(rows)), (BLKID, ok(FS)), ([*findmnt, str(data)], ok("rw,relatime\n")),
        (LVS, ok(rows)), (["blkid", "-o", "export", "/dev/vg0/logs"], ok("UUID=1111\nTYPE=ext4\n")),
        ([*findmnt, str(logs)], ok("rw,relatime\n")),
        *build(str(data)), (["umount", fresh_dir(str(data))], ok()),
        (["lvcreate", "--yes", "--name", f"{FRESH}.logs", "--size", "1073741824b", "vg0"], ok()),
        (["mkfs", "-t", "ext4", "-q", "-U", "1111", f"/dev/vg0/{FRESH}.logs"], ok()),
        (["mount", "-t", "ext4", f"/dev/vg0/{FRESH}.logs", fresh_logs], ok()),
        (["umount", fresh_logs], ok()),
        # data is swapped in
        (["umount", str(data)], ok()),
        (["lvrename", "vg0", "data", f"{PRE}.data"], ok()),
        (["lvrename", "vg0", f"{FRESH}.data", "data"], ok()),
        ([*MOUNT_LIVE, str(data)], ok()),
        # logs fails: mounted again, its fresh LV removed
        (["umount", str(logs)], ok()),
        (["lvrename", "vg0", "logs", f"{PRE}.logs"], fails(5, "  Cannot rename open logical volume")),
        (mount_logs, ok()),
        (["lvremove", "--yes", f"vg0/{FRESH}.logs"], ok()),
        # data is taken back, last step first, and its fresh LV removed; nothing deactivated
        (["umount", str(data)], ok()),
        (["lvrename", "vg0", "data", f"{FRESH}.data"], ok()),
        (["lvrename", "vg0", f"{PRE}.data", "data"], ok()),
        ([*MOUNT_LIVE, str(data)], ok()),
        REMOVE,
    ])  # fmt: skip
    provider = LvmProvider(contract, lambda: table)
    with pytest.raises(LocalSnapshotError) as raised:
        rollback(cfg, RollbackRequest("data", from_repo=snapshot_id[:8], yes=True), session.PasswordSource(),
                 providers=lambda: {"lvm": provider})  # fmt: skip
    assert raised.value.message.endswith(
        f"Cannot rename open logical volume; {logs} was not changed; {data} put back as before"
    )
    assert contract.finished()
