"""LVM rollback (`lvconvert --merge`) through ops, against a recorded command contract.

These machines have no device-mapper: the argv and outputs are what LVM's documentation
and manual pages give; this never ran on a real kernel.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import pytest

from amber.errors import LocalSnapshotError, RollbackRefused
from amber.ops.config.model import parse_config
from amber.ops.localsnap import rollback as rollback_module
from amber.ops.localsnap.requests import RollbackRequest, RollbackResult
from amber.ops.localsnap.rollback import rollback
from amber.services import session
from amber.sources.changes import Changes
from amber.sources.lvm import LvmProvider
from amber.sources.mounts import Mount
from amber.sources.owners import OwnerRecord, Owners
from amber.sources.runner import Completed
from tests.sources.fake_commands import Contract, Step, fails, ok
from tests.sources.test_lvm_contract import LVS, NAME

ORIGIN = "  vg0|data|/dev/vg0/data|/dev/mapper/vg0-data||2026-01-01 00:00:00 +0000|5368709120\n"


def snap_row(name: str) -> str:
    return f"  vg0|{name}.data|/dev/vg0/{name}.data|/dev/mapper/vg0-x|data|2026-12-03 08:00:00 +0000|53687\n"


def setup(tmp_path: Path, mountpoint: str) -> tuple[list[Mount], str, list[tuple[list[str], Completed]]]:
    """A job on the LV vg0/data mounted (ext4) at ``mountpoint``, with one kept snapshot, mounted."""
    snap_path = f"{mountpoint.rstrip('/')}/.amber-snapshots/{NAME}/{quote(mountpoint, safe='')}"
    table = [
        Mount(mountpoint, "/", "ext4", "/dev/mapper/vg0-data"),
        Mount(snap_path, "/", "ext4", f"/dev/mapper/vg0-{NAME}.data"),
    ]
    Path(mountpoint).mkdir(exist_ok=True)
    rows = ORIGIN + snap_row(NAME)
    plan = [(LVS, ok(rows))] * 2  # volume_of, list (the snapshot's mount is in the skipped snapshot dir)
    owners = Owners(str(tmp_path / "local-snapshots"))
    owners.save(OwnerRecord(NAME, "data", 1, "", "", state="kept", repository_snapshot="ab" * 32))
    return table, snap_path, plan


def run(tmp_path: Path, mountpoint: str, table: list[Mount], contract: Contract,
        req: RollbackRequest, notes: list[str] | None = None) -> RollbackResult:  # fmt: skip
    cfg = parse_config(f"""
[repositories.main]
url = "{tmp_path / "repo"}"
[jobs.data]
paths = ["{mountpoint}"]
snapshot = "lvm"
[state]
path = "{tmp_path / "state.db"}"
""")
    provider = LvmProvider(contract, lambda: table)
    note = (notes if notes is not None else []).append
    return rollback(cfg, req, session.PasswordSource(), note, providers=lambda: {"lvm": provider})


def test_merge_unmounts_merges_and_mounts_again(tmp_path: Path) -> None:
    live = str(tmp_path / "data")
    table, snap_path, plan = setup(tmp_path, live)
    merge_steps = [
        (["umount", snap_path], ok()),
        (["umount", live], ok()),
        (["lvconvert", "--merge", f"vg0/{NAME}.data"], ok(f"  Merging of volume vg0/{NAME}.data started.\n")),
        (["mount", "-t", "ext4", "/dev/vg0/data", live], ok()),
    ]
    dry = Contract(plan)
    planned = run(tmp_path, live, table, dry, RollbackRequest("data", dry_run=True))
    assert planned.steps[:4] == [" ".join(argv) for argv, _ in merge_steps]
    assert "cannot be undone" in planned.steps[-1] and dry.finished()
    contract = Contract([*plan, *merge_steps])
    marks = tmp_path / "marks"
    req = RollbackRequest("data", yes=True, stop=[f"echo stop >> {marks}"], start=[f"echo start >> {marks}"])
    done = run(tmp_path, live, table, contract, req)
    assert done.done and contract.finished()
    assert marks.read_text() == "stop\nstart\n"


def test_an_origin_still_open_defers_the_merge_and_says_so(tmp_path: Path) -> None:
    live = str(tmp_path / "data")
    table, snap_path, plan = setup(tmp_path, live)
    notes: list[str] = []
    contract = Contract([
        *plan,
        (["umount", snap_path], ok()),
        (["umount", live], ok()),
        (["lvconvert", "--merge", f"vg0/{NAME}.data"], ok("  Delaying merge since origin is open.\n")),
        (["mount", "-t", "ext4", "/dev/vg0/data", live], ok()),
    ])  # fmt: skip
    assert run(tmp_path, live, table, contract, RollbackRequest("data", yes=True), notes).done
    assert contract.finished()
    assert any("merge happens at its next activation" in n for n in notes)


def test_a_failed_merge_mounts_the_live_filesystem_again(tmp_path: Path) -> None:
    live = str(tmp_path / "data")
    table, snap_path, plan = setup(tmp_path, live)
    contract = Contract([
        *plan,
        (["umount", snap_path], ok()),
        (["umount", live], ok()),
        (["lvconvert", "--merge", f"vg0/{NAME}.data"], fails(5, "  Can't merge over open origin volume.")),
        (["mount", "-t", "ext4", "/dev/vg0/data", live], ok()),
    ])  # fmt: skip
    with pytest.raises(LocalSnapshotError, match=r"lvconvert --merge .* failed"):
        run(tmp_path, live, table, contract, RollbackRequest("data", yes=True))
    assert contract.finished()


def test_a_busy_live_filesystem_is_left_mounted(tmp_path: Path) -> None:
    live = str(tmp_path / "data")
    table, snap_path, plan = setup(tmp_path, live)
    contract = Contract([
        *plan,
        (["umount", snap_path], ok()),
        (["umount", live], fails(32, f"umount: {live}: target is busy.")),
    ])  # fmt: skip
    with pytest.raises(LocalSnapshotError, match="target is busy"):
        run(tmp_path, live, table, contract, RollbackRequest("data", yes=True))
    assert contract.finished()


def test_the_root_filesystem_gets_the_plan(tmp_path: Path) -> None:
    table, _, plan = setup(tmp_path, "/")
    with pytest.raises(RollbackRefused, match=r"lvconvert --merge vg0/.*then reboot"):
        run(tmp_path, "/", table, Contract(plan), RollbackRequest("data", yes=True))


PRE = "amber-data-pre-rollback-20261203T100001.000Z"
LATER = "amber-data-pre-rollback-20261203T110000.000Z"


def undo_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, list[Mount], list[Step]]:
    """vg0/data after a rollback from the repository: the old LV kept, inactive, as <PRE>.data."""
    monkeypatch.setattr(rollback_module, "new_name", lambda _job, pre_rollback=False: LATER)
    live = str(tmp_path / "data")
    table, _, _ = setup(tmp_path, live)
    kept = snap_row(PRE).replace("|data|", "||")  # no origin: it was the origin
    reads: list[Step] = [
        *[(LVS, ok(ORIGIN + kept))] * 2,
        (["blkid", "-o", "export", "/dev/vg0/data"], ok("UUID=0b5e\nTYPE=ext4\n")),
        (["findmnt", "-n", "-r", "-o", "OPTIONS", "--mountpoint", live], ok("rw,noatime\n")),
    ]
    return live, table, reads


def test_undo_puts_the_kept_lv_back_and_sets_the_live_one_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    live, table, reads = undo_setup(tmp_path, monkeypatch)
    contract = Contract([
        *reads,
        (["lvchange", "--setactivationskip", "n", f"vg0/{PRE}.data"], ok()),
        (["lvchange", "--activate", "y", f"vg0/{PRE}.data"], ok()),
        (["umount", live], ok()),
        (["lvrename", "vg0", "data", f"{LATER}.data"], ok()),
        (["lvrename", "vg0", f"{PRE}.data", "data"], ok()),
        (["mount", "-t", "ext4", "-o", "rw,noatime", "/dev/vg0/data", live], ok()),
        (["lvchange", "--setactivationskip", "y", f"vg0/{LATER}.data"], ok()),
        (["lvchange", "--activate", "n", f"vg0/{LATER}.data"], ok()),
    ])  # fmt: skip
    done = run(tmp_path, live, table, contract, RollbackRequest("data", PRE, yes=True))
    assert done.done and done.kept_as == f"vg0/{LATER}.data" and contract.finished()


def test_a_busy_undo_leaves_the_kept_lv_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    live, table, reads = undo_setup(tmp_path, monkeypatch)
    contract = Contract([
        *reads,
        (["lvchange", "--setactivationskip", "n", f"vg0/{PRE}.data"], ok()),
        (["lvchange", "--activate", "y", f"vg0/{PRE}.data"], ok()),
        (["umount", live], fails(32, f"umount: {live}: target is busy.")),
        (["lvchange", "--activate", "n", f"vg0/{PRE}.data"], ok()),
        (["lvchange", "--setactivationskip", "y", f"vg0/{PRE}.data"], ok()),
    ])  # fmt: skip
    with pytest.raises(LocalSnapshotError, match=f"target is busy.; {live} was not changed"):
        run(tmp_path, live, table, contract, RollbackRequest("data", PRE, yes=True))
    assert contract.finished()  # the kept LV is not removed: it is still the way back


def fill(live: Path, snapshot: Path) -> None:
    """The same files in both, then the live one changed since the snapshot."""
    for root in (live, snapshot):
        (root / "docs").mkdir(parents=True, exist_ok=True)
        for rel in ("keep.txt", "docs/edit.txt"):
            (root / rel).write_text("as snapshotted")
            os.utime(root / rel, ns=(10**18, 10**18))
    (snapshot / "gone.txt").write_text("deleted since")  # the merge brings it back: added
    (live / "new.txt").write_text("made since")  # removed
    (live / "docs" / "edit.txt").write_text("edited since")  # modified


def merge_steps(live: str, snap_path: str) -> list[Step]:
    return [
        (["umount", snap_path], ok()),
        (["umount", live], ok()),
        (["lvconvert", "--merge", f"vg0/{NAME}.data"], ok()),
        (["mount", "-t", "ext4", "/dev/vg0/data", live], ok()),
    ]


def test_a_merge_counts_the_live_filesystem_against_the_mounted_snapshot(tmp_path: Path) -> None:
    live = str(tmp_path / "data")
    table, snap_path, plan = setup(tmp_path, live)
    fill(Path(live), Path(snap_path))  # the snapshot is mounted inside the live tree: not counted
    dry = Contract(plan)
    assert run(tmp_path, live, table, dry, RollbackRequest("data", dry_run=True)).changes == Changes(1, 1, 1)
    contract = Contract([*plan, *merge_steps(live, snap_path)])
    done = run(tmp_path, live, table, contract, RollbackRequest("data", yes=True))
    assert done.done and contract.finished() and done.changes == Changes(1, 1, 1)


def test_a_snapshot_not_mounted_is_mounted_read_only_to_be_counted(tmp_path: Path) -> None:
    """After a reboot a kept snapshot LV is not mounted: a dry run says so; the rollback mounts it."""
    live = str(tmp_path / "data")
    table, snap_path, plan = setup(tmp_path, live)
    del table[1:]  # not mounted
    snapshot = Path(tmp_path / "as-mounted")
    fill(Path(live), snapshot)
    planned = run(tmp_path, live, table, Contract(plan), RollbackRequest("data", dry_run=True))
    assert planned.changes is None and planned.not_counted == (
        f"vg0/{NAME}.data is not mounted and a dry run mounts nothing"
    )
    assert planned.steps[0] == f"umount {live}"  # nothing to unmount first
    with pytest.raises(RollbackRefused, match="give --yes"):  # refused before anything is mounted
        run(tmp_path, live, table, Contract(plan), RollbackRequest("data"))
    mount = ["mount", "-o", "ro,noload", f"/dev/vg0/{NAME}.data", snap_path]
    mounted = (mount, ok(), lambda: snapshot.rename(snap_path))  # what was in the LV, shown at snap_path
    contract = Contract([*plan, mounted, *merge_steps(live, snap_path)])
    done = run(tmp_path, live, table, contract, RollbackRequest("data", yes=True))
    assert done.done and contract.finished() and done.changes == Changes(1, 1, 1)


def test_a_snapshot_that_cannot_be_mounted_is_not_counted_and_the_merge_goes_on(tmp_path: Path) -> None:
    live = str(tmp_path / "data")
    table, snap_path, plan = setup(tmp_path, live)
    del table[1:]
    mount = ["mount", "-o", "ro,noload", f"/dev/vg0/{NAME}.data", snap_path]
    contract = Contract([*plan, (mount, fails(32, "mount: wrong fs type, bad superblock")),
                         *merge_steps(live, snap_path)[1:]])  # fmt: skip
    done = run(tmp_path, live, table, contract, RollbackRequest("data", yes=True))
    assert done.done and contract.finished() and done.changes is None
    assert done.not_counted.startswith(f"vg0/{NAME}.data could not be mounted: mount -o ro,noload failed")
    assert not Path(live, ".amber-snapshots", NAME).exists()  # the directories made for the mount are gone
