"""`amber rollback` on a real Btrfs filesystem: local snapshot, undo, from the repository, refusals."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.btrfs_fs import needs_btrfs, sh, subvolume
from tests.cli.test_local_snapshots import amber, listed
from tests.conftest import AmberCli
from tests.ops.test_run_fssnap import make_job
from tests.sources.test_btrfs_swap import identity, subvolume_ids

pytestmark = needs_btrfs


def state(vol: Path) -> dict[str, str]:
    return {str(p.relative_to(vol)): p.read_text() for p in sorted(vol.rglob("*")) if p.is_file()}


def setup_job(
    tmp_path: Path, btrfs: Path, cli: AmberCli
) -> tuple[Path, Path, dict[str, str], dict[str, str]]:
    vol = subvolume(btrfs / "vol")
    subvolume(vol / "inner")
    (vol / "inner" / "nested.txt").write_text("nested")
    (vol / "keep.txt").write_text("keep")
    (vol / "edit.txt").write_text("before")
    (vol / "gone.txt").write_text("deleted later")
    make_job(tmp_path, [vol], "snapshot_keep = 1")
    cfg = tmp_path / "config.toml"
    amber(cli, cfg, "run", "home")
    backed_up = state(vol)
    (vol / "edit.txt").write_text("after, and longer")
    (vol / "gone.txt").unlink()
    (vol / "new.txt").write_text("new")
    return vol, cfg, backed_up, state(vol)


@pytest.mark.slow
def test_rollback_to_the_local_snapshot_and_undo(tmp_path: Path, btrfs: Path, cli: AmberCli) -> None:
    vol, cfg, backed_up, current = setup_job(tmp_path, btrfs, cli)
    plan = amber(cli, cfg, "rollback", "home", "--dry-run")
    assert "move the live" in plan.stdout and state(vol) == current
    assert "would change: 1 added, 1 removed, 1 modified" in plan.stdout
    refused = amber(cli, cfg, "rollback", "home", check=False)
    assert refused.returncode == 33 and state(vol) == current
    marks = tmp_path / "marks"
    done = amber(
        cli,
        cfg,
        "rollback",
        "home",
        "--yes",
        "--stop",
        f"echo stop >> {marks}",
        "--start",
        f"echo start >> {marks}",
    )
    assert state(vol) == backed_up
    assert marks.read_text() == "stop\nstart\n"
    assert "1 added, 1 removed, 1 modified" in done.stdout  # gone.txt back, new.txt away, edit.txt restored
    (vol / "after-rollback").write_text("x")  # the rolled-back tree is writable
    pre = [e for e in listed(cli, cfg) if e["state"] == "pre-rollback"]
    assert len(pre) == 1 and str(pre[0]["name"]).startswith("amber-home-pre-rollback-")
    amber(cli, cfg, "rollback", "home", "--to", str(pre[0]["name"]), "--yes")  # undo
    assert state(vol) == current
    (vol / "inner" / "still-a-subvolume").write_text("x")
    assert os.stat(vol / "inner").st_ino == 256
    amber(cli, cfg, "local-snapshots", "cleanup", "home")  # the pre-rollback state, nested subvolume and all
    assert [e["state"] for e in listed(cli, cfg)] == ["kept"]


@pytest.mark.slow
def test_rollback_from_the_repository(tmp_path: Path, btrfs: Path, cli: AmberCli) -> None:
    vol, cfg, backed_up, current = setup_job(tmp_path, btrfs, cli)
    [entry] = [e for e in listed(cli, cfg) if e["state"] == "kept"]
    amber(cli, cfg, "local-snapshots", "cleanup")  # keep = 1: nothing removed
    snapshot_id = str(entry["repository_snapshot"])
    plan = amber(cli, cfg, "rollback", "home", "--from-repo", snapshot_id[:8], "--dry-run")
    assert "would change: 1 added, 1 removed, 1 modified" in plan.stdout  # against the repository's tree
    done = amber(cli, cfg, "rollback", "home", "--from-repo", snapshot_id[:8], "--yes")
    assert state(vol) == backed_up and "1 added, 1 removed, 1 modified" in done.stdout
    assert os.stat(vol / "inner").st_ino == 256  # the nested subvolume came back as a subvolume
    assert os.stat(vol / "inner").st_dev != os.stat(vol).st_dev
    assert not [e for e in listed(cli, cfg) if e["state"] == "leftover"]
    pre = [e for e in listed(cli, cfg) if e["state"] == "pre-rollback"]
    amber(cli, cfg, "rollback", "home", "--to", str(pre[0]["name"]), "--yes")
    assert state(vol) == current


@pytest.mark.slow
def test_from_repo_latest_is_the_jobs_newest_snapshot_that_holds_the_volume(
    tmp_path: Path, btrfs: Path, cli: AmberCli
) -> None:
    vol, cfg, backed_up, _ = setup_job(tmp_path, btrfs, cli)
    [entry] = [e for e in listed(cli, cfg) if e["state"] == "kept"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "x").write_text("x")
    repo = ("-r", str(tmp_path / "repo"), "--password-file", str(tmp_path / "pass"))
    amber(cli, cfg, *repo, "backup", str(other))  # newer, but of other paths
    plan = amber(cli, cfg, "rollback", "home", "--from-repo", "latest", "--dry-run")
    assert f"restore {str(entry['repository_snapshot'])[:8]}:{vol} into a new subvolume" in plan.stdout
    amber(cli, cfg, "rollback", "home", "--from-repo", "latest", "--yes")
    assert state(vol) == backed_up
    make_job(tmp_path, [vol], 'snapshot_keep = 1\nhost = "another-machine"')  # no snapshot of this job now
    refused = amber(cli, cfg, "rollback", "home", "--from-repo", "latest", "--dry-run", check=False)
    assert refused.returncode == 15, refused.stderr
    assert f"no snapshot of job home holds {vol} (latest)" in refused.stderr


def test_a_mounted_subvolume_gets_a_plan_not_a_swap(tmp_path: Path, btrfs: Path, cli: AmberCli) -> None:
    (btrfs / "a").write_text("a")
    make_job(tmp_path, [btrfs], "snapshot_keep = 1")
    cfg = tmp_path / "config.toml"
    amber(cli, cfg, "run", "home")
    refused = amber(cli, cfg, "rollback", "home", "--yes", check=False)
    assert refused.returncode == 33 and "set-default" in refused.stderr
    assert json.loads(amber(cli, cfg, "local-snapshots", "--json").stdout.splitlines()[0])["state"] == "kept"


def test_a_job_below_a_subvolume_is_warned_and_not_rolled_back_from_a_partial_backup(
    tmp_path: Path, btrfs: Path, cli: AmberCli
) -> None:
    vol = subvolume(btrfs / "vol")
    (vol / "sub").mkdir()
    (vol / "sub" / "a").write_text("a")
    (vol / "other").write_text("not in the backup")
    make_job(tmp_path, [vol / "sub"], "snapshot_keep = 1")
    cfg = tmp_path / "config.toml"
    amber(cli, cfg, "run", "home")
    plan = amber(cli, cfg, "rollback", "home", "--dry-run").stdout
    assert f"the whole subvolume {vol} is rolled back" in plan
    [entry] = listed(cli, cfg)
    refused = amber(cli, cfg, "rollback", "home", "--from-repo", str(entry["repository_snapshot"])[:8],
                    "--yes", check=False)  # fmt: skip
    assert refused.returncode == 33 and "would drop the rest of that subvolume" in refused.stderr
    assert (vol / "other").read_text() == "not in the backup"


@pytest.mark.slow
def test_a_second_volume_that_cannot_move_leaves_both_as_they_were(
    tmp_path: Path, btrfs: Path, cli: AmberCli
) -> None:
    a, b = subvolume(btrfs / "a"), subvolume(btrfs / "b")
    subvolume(a / "inner")
    for vol in (a, a / "inner", b):
        (vol / "f.txt").write_text("backed up")
    make_job(tmp_path, [a, b], "snapshot_keep = 1")
    cfg = tmp_path / "config.toml"
    amber(cli, cfg, "run", "home")
    for vol in (a, a / "inner", b):
        (vol / "f.txt").write_text("changed since")
    before, subvolumes = identity(a) | identity(b), subvolume_ids(btrfs)
    [entry] = listed(cli, cfg)
    from_repo = ("--from-repo", str(entry["repository_snapshot"])[:8])
    sh("chattr", "+i", str(b))  # the live b cannot be renamed away: the second move fails for real
    try:
        failed = [amber(cli, cfg, "rollback", "home", "--yes", *how, check=False) for how in [(), from_repo]]
    finally:
        sh("chattr", "-i", str(b))
    why = f"rollback of {b} failed: Operation not permitted ({b}); the live state is unchanged"
    assert [(f.returncode, why in f.stderr) for f in failed] == [(32, True), (32, True)]
    assert identity(a) | identity(b) == before  # the same subvolumes, not copies
    assert subvolume_ids(btrfs) == subvolumes  # no writable snapshot or restored subvolume left behind
    assert [e["state"] for e in listed(cli, cfg)] == ["kept"]  # no pre-rollback state, no leftover
    assert os.listdir(tmp_path / "state" / "local-snapshots") == [f"{entry['name']}.json"]
    amber(cli, cfg, "rollback", "home", "--yes")  # once b can move, the rollback works
    assert [(v / "f.txt").read_text() for v in (a, a / "inner", b)] == ["backed up"] * 3


@pytest.mark.slow
def test_a_target_that_cannot_take_the_live_place_brings_the_live_one_back(
    tmp_path: Path, btrfs: Path, cli: AmberCli
) -> None:
    vol, cfg, backed_up, current = setup_job(tmp_path, btrfs, cli)
    amber(cli, cfg, "rollback", "home", "--yes")
    [pre] = [str(e["name"]) for e in listed(cli, cfg) if e["state"] == "pre-rollback"]
    kept = btrfs / ".amber-snapshots" / pre / str(vol).replace("/", "%2F")
    before, subvolumes = identity(vol), subvolume_ids(btrfs)
    sh("chattr", "+i", str(kept))  # the undo's target cannot be renamed in, after the live one moved away
    try:
        failed = amber(cli, cfg, "rollback", "home", "--to", pre, "--yes", check=False)
    finally:
        sh("chattr", "-i", str(kept))
    assert failed.returncode == 32 and "the live state is unchanged" in failed.stderr
    assert f"Operation not permitted ({kept})" in failed.stderr
    assert identity(vol) == before and state(vol) == backed_up and subvolume_ids(btrfs) == subvolumes
    assert sorted(os.listdir(btrfs / ".amber-snapshots")) == sorted([str(listed(cli, cfg)[0]["name"]), pre])
    amber(cli, cfg, "rollback", "home", "--to", pre, "--yes")  # the undo works once it can
    assert state(vol) == current


@pytest.mark.slow
def test_a_subvolume_created_below_the_live_one_after_the_snapshot_is_counted_with_all_it_holds(
    tmp_path: Path, btrfs: Path, cli: AmberCli
) -> None:
    """Not a job volume: it moves aside with the live subvolume, so its files go from the live path too."""
    vol, cfg, backed_up, _ = setup_job(tmp_path, btrfs, cli)
    later = subvolume(vol / "later")  # its own st_dev, no mount point
    (later / "d").mkdir()
    for rel in ("a.txt", "b.txt", "d/c.txt"):
        (later / rel).write_text(rel)
    removed = 1 + 5  # new.txt; later, later/a.txt, later/b.txt, later/d, later/d/c.txt
    [entry] = [e for e in listed(cli, cfg) if e["state"] == "kept"]
    from_repo = amber(cli, cfg, "rollback", "home", "--from-repo", str(entry["repository_snapshot"])[:8],
                      "--dry-run")  # fmt: skip
    plan = amber(cli, cfg, "rollback", "home", "--dry-run")
    for out in (from_repo, plan):
        assert f"would change: 1 added, {removed} removed, 1 modified" in out.stdout
    done = amber(cli, cfg, "rollback", "home", "--yes")
    assert f"1 added, {removed} removed, 1 modified" in done.stdout and state(vol) == backed_up
    assert not (vol / "later").exists()  # it went with the pre-rollback subvolume
    [pre] = [str(e["name"]) for e in listed(cli, cfg) if e["state"] == "pre-rollback"]
    undo = amber(cli, cfg, "rollback", "home", "--to", pre, "--yes")
    assert f"{removed} added, 1 removed, 1 modified" in undo.stdout
    assert (vol / "later" / "d" / "c.txt").read_text() == "d/c.txt"
