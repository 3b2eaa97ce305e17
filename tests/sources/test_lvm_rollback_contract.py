"""LVM rollback (`lvconvert --merge`) through ops, against a recorded command contract.

These machines have no device-mapper: the argv and outputs are what LVM's documentation
and manual pages give; this never ran on a real kernel.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

from amber.errors import LocalSnapshotError, RollbackRefused
from amber.ops.config.model import parse_config
from amber.ops.localsnap.requests import RollbackRequest, RollbackResult
from amber.ops.localsnap.rollback import rollback
from amber.services import session
from amber.sources.lvm import LvmProvider
from amber.sources.mounts import Mount
from amber.sources.owners import OwnerRecord, Owners
from amber.sources.runner import Completed
from tests.sources.fake_commands import Contract, fails, ok
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


def test_to_a_pre_rollback_lv_is_refused_with_the_commands_to_do_it_by_hand(tmp_path: Path) -> None:
    live = str(tmp_path / "data")
    table, _, _ = setup(tmp_path, live)
    pre = "amber-data-pre-rollback-20261203T100001.000Z"
    pre_row = snap_row(pre).replace("|data|", "||")  # no origin: the old origin itself
    contract = Contract([(LVS, ok(ORIGIN + snap_row(NAME) + pre_row))] * 2)
    with pytest.raises(RollbackRefused, match=rf"lvrename vg0/{pre}.data data; lvchange --setactivation"):
        run(tmp_path, live, table, contract, RollbackRequest("data", pre, yes=True))
    assert contract.finished()
