"""Backup behaviour and the browsing, key and error paths of the CLI, end to end."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from amber.engine.progress import NullProgress
from amber.repository import Repository
from amber.services.backup import content_reader
from tests.conftest import AmberCli, CliResult, is_root

root_only = pytest.mark.skipif(not is_root(), reason="needs root")


def summary(result: CliResult) -> dict[str, Any]:
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    found = [m for m in lines if m.get("message_type") == "summary"]
    assert len(found) == 1, result.stdout
    return found[0]


def backup(cli: AmberCli, *args: str, check: bool = True) -> dict[str, Any]:
    return summary(cli.run("backup", "--json", *args, check=check))


def snapshots(cli: AmberCli, *args: str) -> list[dict[str, Any]]:
    return json.loads(cli.run("snapshots", "--json", *args).stdout)  # type: ignore[no-any-return]


def make_src(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def ls_paths(cli: AmberCli, snap: str) -> set[str]:
    return set(cli.run("ls", snap).stdout.splitlines())


def assert_one_line_error(result: CliResult, code: int) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("amber:"), result.stderr
    assert "Traceback" not in result.stderr + result.stdout


# -- incremental backups -----------------------------------------------------


def test_incremental_backup_rereads_only_changed_files(cli: AmberCli, tmp_path: Path) -> None:
    src = make_src(tmp_path / "src", {f"d{i % 3}/f{i}.txt": b"x" * i for i in range(20)})
    first = backup(cli, str(src))
    assert first["files_new"] == 20 and first["data_added"] > 0 and not first["partial"]
    second = backup(cli, str(src))
    assert second["files_unmodified"] == second["total_files_processed"] == 20
    assert second["files_new"] == second["files_changed"] == 0
    assert second["data_added"] == 0 and second["data_blobs"] == 0
    (src / "d1" / "f7.txt").write_bytes(b"changed content")
    third = backup(cli, str(src))
    assert third["files_changed"] == 1
    assert third["files_unmodified"] == 19
    assert third["data_added"] == len(b"changed content")
    forced = backup(cli, "--force", str(src))
    assert forced["files_unmodified"] == 0 and forced["data_added"] == 0  # re-read, deduplicated


def test_exclude_and_exclude_file(cli: AmberCli, tmp_path: Path) -> None:
    src = make_src(tmp_path / "src", {
        "keep.txt": b"k", "x.log": b"l", "sub/y.log": b"l", "sub/keep2.txt": b"k",
        "cache/big.bin": b"c", "sub/cache/keep3.txt": b"k", "a/tmp/b/z.txt": b"z",
    })  # fmt: skip
    patterns = tmp_path / "excludes"
    patterns.write_text(f"# a comment\n\n{src}/cache\ntmp/b\n")
    out = backup(cli, "--exclude", "*.log", "--exclude-file", str(patterns), str(src))
    got = {p[len(str(src)) :] for p in ls_paths(cli, out["snapshot_id"]) if p.startswith(f"{src}/")}
    assert got == {"/keep.txt", "/sub", "/sub/keep2.txt", "/sub/cache", "/sub/cache/keep3.txt",
                   "/a", "/a/tmp"}  # fmt: skip


# -- snapshot metadata and selection ------------------------------------------


def test_tag_host_time_in_snapshots_json(cli: AmberCli, tmp_path: Path) -> None:
    src = make_src(tmp_path / "src", {"a": b"a"})
    out = backup(cli, "--tag", "b", "--tag", "a", "--host", "box", "--time", "2001-02-03T04:05:06Z", str(src))
    [snap] = snapshots(cli)
    assert snap["id"] == out["snapshot_id"] and snap["short_id"] == snap["id"][:8]
    assert snap["time"].startswith("2001-02-03T04:05:06") and snap["time"].endswith("+00:00")
    assert snap["hostname"] == "box"
    assert snap["paths"] == [str(src)]
    assert snap["tags"] == ["a", "b"]
    assert snap["summary"]["total_files"] == 1
    bad = cli.run("backup", "--time", "yesterday", str(src), check=False)
    assert_one_line_error(bad, 2)


def test_snapshot_filters_and_latest(cli: AmberCli, tmp_path: Path) -> None:
    one = make_src(tmp_path / "one", {"f": b"first"})
    two = make_src(tmp_path / "two", {"g": b"g"})
    a = backup(cli, "--host", "alpha", "--tag", "t1", "--time", "2001-01-01T00:00:00Z", str(one))
    b = backup(cli, "--host", "beta", "--tag", "t1", "--tag", "t2", "--time", "2002-01-01T00:00:00Z",
               str(two))  # fmt: skip
    (one / "f").write_bytes(b"second")
    c = backup(cli, "--host", "beta", "--time", "2003-01-01T00:00:00Z", str(one))

    def ids(*args: str) -> list[str]:
        return [s["id"] for s in snapshots(cli, *args)]

    aid, bid, cid = a["snapshot_id"], b["snapshot_id"], c["snapshot_id"]
    assert ids() == [aid, bid, cid]  # oldest first
    assert ids("--host", "alpha") == [aid]
    assert ids("--host", "beta") == [bid, cid]
    assert ids("--tag", "t1") == [aid, bid]
    assert ids("--tag", "t1,t2") == [bid]
    assert ids("--tag", "t2", "--tag", "nope") == [bid]
    assert ids("--path", str(one)) == [aid, cid]
    assert ids("--path", str(one), "--host", "beta") == [cid]

    restored = tmp_path / "r1"
    cli.run("restore", "latest", "--host", "alpha", "--target", str(restored))
    assert (restored / str(one).lstrip("/") / "f").read_bytes() == b"first"
    restored = tmp_path / "r2"
    cli.run("restore", "latest", "--target", str(restored))
    assert (restored / str(one).lstrip("/") / "f").read_bytes() == b"second"
    res = cli.run("restore", "latest", "--host", "gamma", "--target", str(tmp_path / "r3"), check=False)
    assert_one_line_error(res, 15)


# -- unreadable files, sockets, stdin ----------------------------------------


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory user nobody can use (pytest's tmp_path is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="amber-nobody-", dir="/tmp"))
    d.chmod(0o777)
    yield d
    shutil.rmtree(d)


@root_only
def test_unreadable_file_and_dir_make_partial_snapshot(shared_dir: Path) -> None:
    src = make_src(shared_dir / "src", {"ok.txt": b"fine", "secret.txt": b"s", "locked/inner.txt": b"i"})
    odd = os.fsencode(src) + b"/[red]\xff"  # undecodable and markup-like: skipped list must survive
    Path(os.fsdecode(odd)).write_bytes(b"odd")
    for p in (src / "secret.txt", src / "locked", Path(os.fsdecode(odd))):
        p.chmod(0o000)
    runner = AmberCli(shared_dir / "repo", shared_dir)
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                 sys.executable, "-m", "amber"]  # fmt: skip

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*as_nobody, *args], env=runner.env, capture_output=True, text=True,
                              errors="replace", timeout=120)  # fmt: skip

    assert run("init").returncode == 0
    proc = run("backup", str(src))
    assert proc.returncode == 3, proc.stderr
    assert f"skipped: {src}/secret.txt" in proc.stderr
    assert f"skipped: {src}/locked" in proc.stderr
    assert f"skipped: {src}/[red]\\xff\n" in proc.stderr
    assert "(partial)" in proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("amber:") and "could not be read" in last and "Traceback" not in proc.stderr
    [snap] = snapshots(runner)
    assert snap["partial"] is True
    assert sorted(snap["skipped"]) == [f"{src}/[red]\\xff", f"{src}/locked", f"{src}/secret.txt"]
    assert runner.run("dump", "latest", f"{src}/ok.txt").stdout == "fine"
    # A partial snapshot is never the parent: the next backup re-reads everything.
    (src / "secret.txt").chmod(0o644)
    (src / "locked").chmod(0o755)
    Path(os.fsdecode(odd)).chmod(0o644)
    proc = run("backup", "--json", str(src))
    assert proc.returncode == 0, proc.stderr
    done = json.loads(proc.stdout.splitlines()[-1])
    assert done["files_unmodified"] == 0 and done["total_files_processed"] == 4 and not done["partial"]


def test_sockets_are_skipped_and_reported(
    cli: AmberCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = make_src(tmp_path / "src", {"a.txt": b"a"})
    monkeypatch.chdir(src)  # AF_UNIX paths are limited to 108 bytes: bind relative names
    with socket.socket(socket.AF_UNIX) as one, socket.socket(socket.AF_UNIX) as two:
        one.bind("app.sock")
        two.bind(b"odd\n[red]\xff.sock")  # a newline, rich markup and a non-UTF-8 byte
        res = cli.run("backup", str(src))
        js = cli.run("backup", "--json", str(src))
    assert res.returncode == 0
    notes = res.stderr.splitlines()
    assert f"note: skipped socket or special file {src}/app.sock" in notes
    assert f"note: skipped socket or special file {src}/odd\\n[red]\\xff.sock" in notes
    errors = [json.loads(line) for line in js.stdout.splitlines() if '"error"' in line]
    assert {"message_type": "error", "item": f"{src}/app.sock", "error": "socket skipped"} in errors
    assert {
        "message_type": "error",
        "item": f"{src}/odd\\n[red]\\xff.sock",
        "error": "socket skipped",
    } in errors
    assert f"{src}/app.sock" not in ls_paths(cli, "latest")
    assert f"{src}/a.txt" in ls_paths(cli, "latest")


def test_stdin_round_trip(cli: AmberCli) -> None:
    data = bytes(range(256)) * 5000 + b"-- end of dump\n"
    out = summary(cli.run("backup", "--json", "--stdin", "--stdin-filename", "db.sql", input=data))
    assert out["total_bytes_processed"] == len(data)
    assert cli.run("dump", out["snapshot_id"], "/db.sql").stdout_bytes == data
    [snap] = snapshots(cli)
    assert snap["paths"] == ["/db.sql"]


def test_stdin_from_command(cli: AmberCli) -> None:
    failed = cli.run("backup", "--stdin-from-command", "--", "sh", "-c", "echo hi; exit 3", check=False)
    assert_one_line_error(failed, 19)
    assert snapshots(cli) == []
    cli.run("backup", "--stdin-from-command", "--stdin-filename", "out.txt", "--", "sh", "-c", "echo hi")
    [snap] = snapshots(cli)
    assert snap["paths"] == ["/out.txt"]
    assert cli.run("dump", "latest", "/out.txt").stdout == "hi\n"


@root_only
def test_one_file_system(cli: AmberCli, tmp_path: Path) -> None:
    src = make_src(tmp_path / "src", {"here.txt": b"h"})
    mnt = src / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        (mnt / "elsewhere.txt").write_bytes(b"e")
        crossed = backup(cli, str(src))
        assert f"{mnt}/elsewhere.txt" in ls_paths(cli, crossed["snapshot_id"])
        res = cli.run("backup", "-x", str(src))
        assert f"not crossing into filesystem at {mnt}" in res.stderr
        paths = ls_paths(cli, "latest")
        assert str(mnt) in paths and f"{src}/here.txt" in paths
        assert f"{mnt}/elsewhere.txt" not in paths
        # The mount point itself is a backup path: -x still backs it up.
        inside = backup(cli, "-x", str(mnt))
        assert f"{mnt}/elsewhere.txt" in ls_paths(cli, inside["snapshot_id"])
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


# -- files changing while read -----------------------------------------------


def test_reader_flags_file_changed_while_reading(repo: Repository, tmp_path: Path) -> None:
    reader = content_reader(repo, NullProgress())
    for size in (100, 600 * 1024):  # the small-file path and the chunked path
        path = tmp_path / f"f{size}"
        path.write_bytes(b"a" * size)
        before = os.stat(path)
        assert not reader.read_file(os.fsencode(path), before).changed_while_reading
        with open(path, "ab") as f:
            f.write(b"more")
        assert reader.read_file(os.fsencode(path), before).changed_while_reading
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1))
        assert reader.read_file(os.fsencode(path), os.stat(path)).size == size + 4
        changed_mtime = os.stat(path)
        os.utime(path, ns=(0, 0))
        assert reader.read_file(os.fsencode(path), changed_mtime).changed_while_reading


def test_file_growing_during_backup_is_named(cli: AmberCli, tmp_path: Path) -> None:
    src = make_src(tmp_path / "src", {"growing.log": os.urandom(4 << 20), "still.txt": b"s"})
    stop = threading.Event()

    def grow() -> None:
        with open(src / "growing.log", "ab", buffering=0) as f:
            while not stop.wait(0.001):
                f.write(b"line\n")

    t = threading.Thread(target=grow)
    t.start()
    try:
        out = backup(cli, str(src))
    finally:
        stop.set()
        t.join()
    # Timing-dependent: the writer may miss the read window, but never names another file.
    assert set(out["changed_during_read"]) <= {f"{src}/growing.log"}


# -- browsing -----------------------------------------------------------------


def test_ls_find_diff_dump(cli: AmberCli, tmp_path: Path) -> None:
    src = make_src(tmp_path / "src", {"a.txt": b"alpha\n", "b.txt": b"beta\n", "sub/c.md": b"c"})
    os.symlink("a.txt", src / "link")
    s1 = backup(cli, str(src))["snapshot_id"]
    (src / "a.txt").unlink()
    (src / "b.txt").write_bytes(b"beta, changed\n")
    (src / "sub" / "d.txt").write_bytes(b"new")
    s2 = backup(cli, str(src))["snapshot_id"]

    assert {f"{src}/a.txt", f"{src}/sub/c.md", f"{src}/link"} <= ls_paths(cli, s1)
    listed = cli.run("ls", s1, str(src / "sub")).stdout.splitlines()
    assert listed == [f"{src}/sub", f"{src}/sub/c.md"]
    long_ = cli.run("ls", "--long", s1, str(src)).stdout.splitlines()
    [a_line] = [line for line in long_ if line.endswith(f"{src}/a.txt")]
    assert a_line.startswith("-rw-r--r--") and " 6 " in a_line
    [link_line] = [line for line in long_ if f"{src}/link" in line]
    assert link_line.startswith("lrwxrwxrwx") and link_line.endswith(f"{src}/link -> a.txt")
    [dir_line] = [line for line in long_ if line.endswith(f"{src}/sub")]
    assert dir_line.startswith("d")

    found = cli.run("find", "*.txt")
    lines = found.stdout.splitlines()
    assert sum(f"{src}/b.txt" in line for line in lines) == 2  # in both snapshots
    assert sum(f"{src}/a.txt" in line for line in lines) == 1
    assert any(line.startswith(s2[:8]) and line.endswith(f"{src}/sub/d.txt") for line in lines)
    assert found.stderr.strip() == f"{len(lines)} matches"
    assert cli.run("find", f"{src}/sub/*").stdout.count("\n") == 3  # c.md, then c.md and d.txt

    diff = cli.run("diff", s1, s2)
    lines = diff.stdout.splitlines()
    assert f"-    {src}/a.txt" in lines
    assert f"M    {src}/b.txt" in lines
    assert f"+    {src}/sub/d.txt" in lines
    assert not any(str(src / "sub" / "c.md") in line or f"{src}/link" in line for line in lines)
    assert "added 1, removed 1, modified 1" in diff.stderr
    assert cli.run("diff", s1, s1).stdout == ""

    assert cli.run("dump", s1, f"{src}/a.txt").stdout_bytes == b"alpha\n"
    assert cli.run("dump", s2, f"{src}/b.txt").stdout_bytes == b"beta, changed\n"
    assert_one_line_error(cli.run("dump", s2, f"{src}/a.txt", check=False), 15)
    assert_one_line_error(cli.run("dump", s2, f"{src}/sub", check=False), 2)


# -- keys -------------------------------------------------------------------


def test_key_add_list_remove_passwd(cli: AmberCli, tmp_path: Path) -> None:
    pw2, pw3 = tmp_path / "pw2", tmp_path / "pw3"
    pw2.write_text("second password\n")
    pw3.write_text("third password\n")
    added = cli.run("key", "add", "--new-password-file", str(pw2)).stdout.split()[-1]
    keys = cli.run("key", "list").stdout.splitlines()
    assert len(keys) == 2
    assert [k[1:9] for k in keys if k.startswith("*")] != [added]
    assert any(k[1:9] == added and k.startswith(" ") for k in keys)
    as_second = {"AMBER_PASSWORD": "second password"}
    cli.run("snapshots", env=as_second)
    mine = [k for k in cli.run("key", "list", env=as_second).stdout.splitlines() if k.startswith("*")]
    assert mine[0][1:9] == added
    assert_one_line_error(cli.run("key", "remove", added, env=as_second, check=False), 2)  # in use
    cli.run("key", "remove", added)
    assert_one_line_error(cli.run("snapshots", env=as_second, check=False), 12)
    assert len(cli.run("key", "list").stdout.splitlines()) == 1

    cli.run("key", "passwd", "--new-password-file", str(pw3))
    assert_one_line_error(cli.run("snapshots", check=False), 12)  # the old password is gone
    cli.run("snapshots", env={"AMBER_PASSWORD": "third password"})
    cli.run("snapshots", env={"AMBER_PASSWORD": "", "AMBER_PASSWORD_FILE": str(pw3)})


# -- errors and exit codes ---------------------------------------------------


def test_error_exit_codes(cli: AmberCli, tmp_path: Path) -> None:
    assert_one_line_error(cli.run("snapshots", env={"AMBER_PASSWORD": "wrong"}, check=False), 12)
    missing = {"AMBER_REPOSITORY": str(tmp_path / "nowhere")}
    assert_one_line_error(cli.run("snapshots", env=missing, check=False), 10)
    assert_one_line_error(cli.run("init", check=False), 13)
    assert_one_line_error(cli.run("ls", "deadbeef", check=False), 15)
    res = cli.run("restore", "deadbeef", "--target", str(tmp_path / "t"), check=False)
    assert_one_line_error(res, 15)
    assert_one_line_error(cli.run("restore", "latest", "--target", str(tmp_path / "t"), check=False), 15)
    assert_one_line_error(cli.run("backup", str(tmp_path / "no-such-path"), check=False), 2)


def test_locked_repository(repo: Repository, repo_path: Path, tmp_path: Path) -> None:
    runner = AmberCli(repo_path, tmp_path)
    src = make_src(tmp_path / "src", {"a": b"a"})
    with repo.lock(exclusive=True):
        res = runner.run("backup", str(src), check=False)
        assert_one_line_error(res, 11)
        assert runner.run("snapshots", "--json").stdout.strip() == "[]"  # lock-free reads still work
    runner.run("backup", str(src))
