"""`amber run` with snapshot = "btrfs" on a real Btrfs filesystem: original paths, excludes, reuse, keep."""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

from amber.engine.treewalk import walk
from amber.ops.config.model import Config, parse_config
from amber.ops.run import job as run_service
from amber.ops.state import Destination, StateDB
from amber.repository import open_repository
from amber.services import browse, session
from amber.storage import open_backend
from tests.btrfs_fs import needs_btrfs, sh, subvolume
from tests.conftest import PASSWORD

pytestmark = needs_btrfs


def make_job(tmp: Path, paths: list[Path], extra: str = "") -> Config:
    (tmp / "pass").write_text(PASSWORD + "\n")
    if not (tmp / "repo").exists():
        session.create(str(tmp / "repo"), PASSWORD.encode()).close()
    cfg = tmp / "config.toml"
    cfg.write_text(
        f"""
[repositories.main]
url = "{tmp / "repo"}"
password_file = "{tmp / "pass"}"

[jobs.home]
paths = {[str(p) for p in paths]!r}
repository = "main"
snapshot = "btrfs"
exclude = ["*.tmp"]
check = {{ enabled = false }}
{extra}

[state]
path = "{tmp / "state" / "state.db"}"
audit_log = "{tmp / "state" / "audit.log"}"
""".replace("'", '"')
    )
    return parse_config(cfg.read_text(), str(cfg))


def run(cfg: Config) -> Destination:
    results = run_service.run_jobs(cfg, ["home"], run_service.RunOptions())
    assert results[0].status == "success", results[0].error
    assert results[0].record is not None
    return results[0].record.destinations[0]


def recorded(tmp: Path, snapshot_id: str) -> dict[str, bytes]:
    repo = open_repository(open_backend(str(tmp / "repo")), PASSWORD.encode())
    snap = repo.load_snapshot(snapshot_id)
    files = {os.fsdecode(p): n.sha256 for p, n in walk(repo.load_tree, snap.tree)}  # every node
    return files | {"tags": ",".join(snap.tags).encode(), "paths": ",".join(snap.paths).encode()}


def snapshots_on_disk(mnt: Path) -> list[str]:
    where = mnt / ".amber-snapshots"
    return sorted(os.listdir(where)) if where.exists() else []


def test_backup_reads_the_snapshot_and_records_original_paths(tmp_path: Path, btrfs: Path) -> None:
    vol = subvolume(btrfs / "vol")
    (vol / "keep.txt").write_text("one")
    (vol / "skip.tmp").write_text("excluded by its original path")
    inner = subvolume(vol / "inner")
    (inner / "nested.txt").write_text("nested subvolume")
    cfg = make_job(tmp_path, [vol])
    dest = run(cfg)
    files = recorded(tmp_path, dest.snapshot_id)
    assert str(vol / "keep.txt") in files and str(inner / "nested.txt") in files
    assert not any(".amber-snapshots" in p for p in files)
    assert str(vol / "skip.tmp") not in files
    assert files["paths"] == str(vol).encode()
    name = dest.details["local_snapshot"]
    assert f"local-snapshot={name}".encode() in files["tags"].split(b",")
    assert snapshots_on_disk(btrfs) == []  # snapshot_keep = 0: removed once backed up
    assert os.listdir(tmp_path / "state" / "local-snapshots") == []


def test_unchanged_files_are_not_read_again_across_runs(tmp_path: Path, btrfs: Path) -> None:
    vol = subvolume(btrfs / "vol")
    for i in range(5):
        (vol / f"f{i}.txt").write_text(f"file {i}\n" * 100)
    cfg = make_job(tmp_path, [vol])
    first = run(cfg)
    assert first.details["files_read"] == 5
    (vol / "f0.txt").write_text("changed\n")
    second = run(cfg)
    assert (
        second.details["files_read"] == 1
    )  # a new snapshot path each run, yet only the changed file is read
    assert second.details["files_changed"] == 1 and second.details["files_new"] == 0


def test_snapshot_keep_keeps_the_newest(tmp_path: Path, btrfs: Path) -> None:
    vol = subvolume(btrfs / "vol")
    (vol / "a").write_text("a")
    cfg = make_job(tmp_path, [vol], "snapshot_keep = 2")
    names = [run(cfg).details["local_snapshot"] for _ in range(3)]
    assert snapshots_on_disk(btrfs) == sorted(names[1:])
    records = StateDB(cfg.state.path).runs("home")
    assert len(records) == 3


def test_pre_and_post_snapshot_hooks_run_around_the_snapshot(tmp_path: Path, btrfs: Path) -> None:
    vol = subvolume(btrfs / "vol")
    (vol / "a").write_text("a")
    log = tmp_path / "hooks.log"
    cfg = make_job(
        tmp_path,
        [vol],
        f"hooks = {{ pre_snapshot = ['echo pre $AMBER_LOCAL_SNAPSHOT >> {log}'], "
        f"post_snapshot = ['ls {btrfs}/.amber-snapshots >> {log}'] }}",
    )
    name = run(cfg).details["local_snapshot"]
    assert log.read_text().splitlines() == [f"pre {name}", name]


def test_the_whole_filesystem_leaves_its_snapshot_directory_out(tmp_path: Path, btrfs: Path) -> None:
    (btrfs / "top.txt").write_text("top")
    cfg = make_job(tmp_path, [btrfs], "snapshot_keep = 1")
    run(cfg)
    second = run(cfg)  # the snapshot of the top now holds the first run's snapshot directory
    files = recorded(tmp_path, second.snapshot_id)
    assert str(btrfs / "top.txt") in files
    assert not any(".amber-snapshots" in p for p in files)


def test_a_nested_mount_that_cannot_be_snapshotted_is_read_live_and_reported(
    tmp_path: Path, btrfs: Path
) -> None:
    vol = subvolume(btrfs / "vol")
    (vol / "tmp").mkdir()
    sh("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(vol / "tmp"))
    try:
        (vol / "tmp" / "live.txt").write_text("on tmpfs")
        dest = run(make_job(tmp_path, [vol]))
    finally:
        sh("umount", str(vol / "tmp"))
    assert f"{vol / 'tmp'} is another filesystem that is not snapshotted: read live" in dest.details["notes"]
    assert str(vol / "tmp" / "live.txt") in recorded(tmp_path, dest.snapshot_id)


def test_a_missing_path_is_reported_and_the_rest_is_backed_up(tmp_path: Path, btrfs: Path) -> None:
    vol = subvolume(btrfs / "vol")
    (vol / "a").write_text("a")
    cfg = make_job(tmp_path, [vol, btrfs / "gone"])
    results = run_service.run_jobs(cfg, ["home"], run_service.RunOptions())
    assert results[0].status == "partial" and results[0].record is not None
    dest = results[0].record.destinations[0]
    assert set(dest.details["skipped"]) == {str(btrfs / "gone")}  # (main lists a missing path twice)
    assert str(vol / "a") in recorded(tmp_path, dest.snapshot_id)
    assert snapshots_on_disk(btrfs) == []


def test_a_failing_snapshot_hook_fails_the_run_and_leaves_no_snapshot(tmp_path: Path, btrfs: Path) -> None:
    vol = subvolume(btrfs / "vol")
    (vol / "a").write_text("a")
    log = tmp_path / "thaw.log"
    for hooks, exit_code in ((f"pre_snapshot = ['exit 4'], post_snapshot = ['echo thaw >> {log}']", 4),
                             ("post_snapshot = ['exit 5']", 5)):  # fmt: skip
        cfg = make_job(tmp_path, [vol], f"hooks = {{ {hooks} }}")
        results = run_service.run_jobs(cfg, ["home"], run_service.RunOptions())
        assert results[0].status == "failed" and results[0].error is not None
        assert f"exited with status {exit_code}" in results[0].error.message
        owners = tmp_path / "state" / "local-snapshots"
        assert snapshots_on_disk(btrfs) == [] and (not owners.exists() or os.listdir(owners) == [])
    assert log.read_text() == "thaw\n"  # the post hook ran although the pre hook failed


def test_no_existing_path_fails_like_a_plain_backup(tmp_path: Path, btrfs: Path) -> None:
    cfg = make_job(tmp_path, [btrfs / "gone"])
    results = run_service.run_jobs(cfg, ["home"], run_service.RunOptions())
    assert results[0].status == "failed" and results[0].error is not None
    assert results[0].error.exit_code == 2 and "path does not exist" in results[0].error.message
    assert snapshots_on_disk(btrfs) == []


def test_database_dumps_come_first_then_the_snapshot_in_one_repository_snapshot(
    tmp_path: Path, btrfs: Path
) -> None:
    vol = subvolume(btrfs / "vol")
    (vol / "doc.txt").write_text("beside the dump")
    db = tmp_path / "app.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t (v TEXT)")
    con.execute("INSERT INTO t VALUES ('dumped')")
    con.commit()
    con.close()
    hook = tmp_path / "after_dump.py"  # runs before the snapshot: the dump must not see its row
    hook.write_text(
        f"import sqlite3\ncon = sqlite3.connect({str(db)!r})\n"
        "con.execute(\"INSERT INTO t VALUES ('too late')\")\ncon.commit()\n"
    )
    cfg = make_job(
        tmp_path,
        [vol],
        f"hooks = {{ pre_snapshot = ['{sys.executable} {hook}'] }}\n"
        f'[[jobs.home.databases]]\ntype = "sqlite"\npath = "{db}"\nname = "app"\n',
    )
    dest = run(cfg)
    files = recorded(tmp_path, dest.snapshot_id)
    assert str(vol / "doc.txt") in files and "/databases/sqlite/app.sqlite" in files
    assert files["paths"] == ",".join(sorted([str(vol), "/databases"])).encode()
    assert f"local-snapshot={dest.details['local_snapshot']}".encode() in files["tags"].split(b",")
    repo = open_repository(open_backend(str(tmp_path / "repo")), PASSWORD.encode())
    out = tmp_path / "restored.sqlite"
    with open(out, "wb") as f:
        browse.dump(repo, dest.snapshot_id, "/databases/sqlite/app.sqlite", f)
    assert sqlite3.connect(out).execute("SELECT v FROM t").fetchall() == [("dumped",)]
    assert sqlite3.connect(db).execute("SELECT count(*) FROM t").fetchone() == (2,)  # the hook ran
    assert snapshots_on_disk(btrfs) == []


def test_a_failing_dump_takes_no_snapshot(tmp_path: Path, btrfs: Path) -> None:
    vol = subvolume(btrfs / "vol")
    (vol / "doc.txt").write_text("x")
    log = tmp_path / "hook.log"
    cfg = make_job(
        tmp_path,
        [vol],
        f"hooks = {{ pre_snapshot = ['echo ran >> {log}'] }}\n"
        f'[[jobs.home.databases]]\ntype = "sqlite"\npath = "{tmp_path / "missing.db"}"\nname = "app"\n',
    )
    results = run_service.run_jobs(cfg, ["home"], run_service.RunOptions())
    assert results[0].status == "failed"
    assert not log.exists() and snapshots_on_disk(btrfs) == []
