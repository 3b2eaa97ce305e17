"""`amber local-snapshots` and crash cleanup, through the real CLI on a real Btrfs filesystem."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.btrfs_fs import needs_btrfs, sh, subvolume
from tests.conftest import AmberCli
from tests.ops.test_run_fssnap import make_job

pytestmark = needs_btrfs


def amber(cli: AmberCli, cfg: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "amber", "--config", str(cfg), *args],
        env=cli.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert not check or proc.returncode == 0, proc.stderr
    return proc


def listed(cli: AmberCli, cfg: Path) -> list[dict[str, object]]:
    out = amber(cli, cfg, "local-snapshots", "home", "--json").stdout
    return [json.loads(line) for line in out.splitlines()]


@pytest.mark.slow
def test_sigkill_mid_run_leaves_only_what_cleanup_removes(tmp_path: Path, btrfs: Path, cli: AmberCli) -> None:
    vol = subvolume(btrfs / "vol")
    (vol / "a").write_text("a")
    marker = tmp_path / "snapshotted"
    make_job(tmp_path, [vol], f"hooks = {{ post_snapshot = ['touch {marker}; sleep 60'] }}")
    cfg = tmp_path / "config.toml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "amber", "--config", str(cfg), "run", "home"],
        env=cli.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the run never reached its snapshot"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the run and its hook, mid-run
        proc.wait()
    leftovers = listed(cli, cfg)
    assert [e["state"] for e in leftovers] == ["leftover"]
    assert len(os.listdir(tmp_path / "state" / "local-snapshots")) == 1  # the dead owner's record
    make_job(tmp_path, [vol])  # the same job without the sleeping hook
    rerun = amber(cli, cfg, "run", "home")
    assert f"removed old local snapshot {leftovers[0]['name']}" in rerun.stderr
    assert listed(cli, cfg) == [] and os.listdir(btrfs / ".amber-snapshots") == []
    assert os.listdir(tmp_path / "state" / "local-snapshots") == []


def test_list_and_verify_catches_a_changed_file(tmp_path: Path, btrfs: Path, cli: AmberCli) -> None:
    vol = subvolume(btrfs / "vol")
    (vol / "a.txt").write_text("original")
    (vol / "sub").mkdir()
    (vol / "sub" / "b.txt").write_text("b")
    (vol / "same.txt").write_text("b")
    (vol / "link").symlink_to("sub/b.txt")  # not files: never "extra" (a symlink used to be)
    (vol / "dangling").symlink_to("/nowhere/at/all")
    (vol / "dirlink").symlink_to("sub")
    os.mkfifo(vol / "fifo")
    make_job(tmp_path, [vol], "snapshot_keep = 1")
    cfg = tmp_path / "config.toml"
    amber(cli, cfg, "run", "home")
    [entry] = listed(cli, cfg)
    assert entry["job"] == "home" and entry["kind"] == "btrfs" and entry["state"] == "kept"
    assert entry["filesystems"] == [str(vol)] and len(str(entry["repository_snapshot"])) == 64
    name = str(entry["name"])
    header, row = amber(cli, cfg, "local-snapshots").stdout.splitlines()
    assert header.split()[:3] == ["NAME", "JOB", "KIND"]
    assert row.split()[:3] == [name, "home", "btrfs"] and row.split()[-1] == "kept"
    ok = amber(cli, cfg, "local-snapshots", "verify", name)
    assert "3 files checked" in ok.stdout and "extra" not in ok.stdout
    snap = Path(str(entry["paths"][0]))  # type: ignore[index]
    sh("btrfs", "property", "set", "-ts", str(snap), "ro", "false")
    (snap / "a.txt").write_text("tampered")
    (snap / "sub" / "new.txt").write_text("planted")
    bad = amber(cli, cfg, "local-snapshots", "verify", name, check=False)
    assert bad.returncode == 14, bad.stderr
    assert f"changed: {vol / 'a.txt'}" in bad.stdout and f"extra: {vol / 'sub' / 'new.txt'}" in bad.stdout
    (snap / "sub" / "b.txt").unlink()
    assert (
        f"missing: {vol / 'sub' / 'b.txt'}"
        in amber(cli, cfg, "local-snapshots", "verify", name, check=False).stdout
    )
    (snap / "same.txt").unlink()
    (snap / "same.txt").symlink_to("a.txt")  # a file swapped for a symlink is never followed
    (snap / "link").unlink()
    (snap / "link").symlink_to("a.txt")
    (snap / "planted").mkdir()
    out = amber(cli, cfg, "local-snapshots", "verify", name, check=False).stdout
    assert f"changed: {vol / 'same.txt'}" in out and f"changed: {vol / 'link'}" in out, out
    assert f"extra: {vol / 'planted'}" in out and "dangling" not in out and "fifo" not in out, out
