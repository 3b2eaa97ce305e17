"""forget, unlock and append-only mode through the real CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.conftest import AmberCli, CliResult

APPEND_PW = "append only password"


def one_line_error(result: CliResult, code: int, text: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("amber:") and text in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def snapshot_ids(cli: AmberCli, env: dict[str, str] | None = None) -> list[str]:
    found: list[dict[str, Any]] = json.loads(cli.run("snapshots", "--json", env=env).stdout)
    return [s["id"] for s in found]


def make_src(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "a.txt").write_text("hello\n")
    return src


def test_forget_by_policy_dry_run_json_and_by_id(cli: AmberCli, tmp_path: Path) -> None:
    src = make_src(tmp_path)
    times = ["2024-05-01T10:00:00+02:00", "2024-05-01T12:00:00+02:00",
             "2024-05-02T09:00:00+02:00", "2024-05-03T08:00:00+02:00"]  # fmt: skip
    for when in times:
        cli.run("backup", "--time", when, str(src))
    dry = cli.run("forget", "--keep-daily", "2", "--dry-run")
    assert "daily snapshot" in dry.stdout and "dry run: would remove 2 snapshots" in dry.stdout
    assert len(list((cli.repo / "snapshots").iterdir())) == 4

    res = cli.run("forget", "--keep-daily", "2", "--json")
    [group] = json.loads(res.stdout)
    assert [s["time"] for s in group["keep"]] == [times[3], times[2]]
    assert [s["time"] for s in group["remove"]] == [times[1], times[0]]
    assert [r["matches"] for r in group["reasons"]] == [["daily snapshot"], ["daily snapshot"]]
    assert group["host"] and group["paths"] == [str(src)] and group["tags"] is None
    remaining = snapshot_ids(cli)
    assert len(remaining) == 2

    res = cli.run("forget", remaining[0][:8])
    assert "removed 1 snapshot" in res.stdout
    assert snapshot_ids(cli) == remaining[1:]
    cli.run("check")
    target = tmp_path / "restore"
    cli.run("restore", "latest", "--target", str(target))
    assert (Path(str(target) + str(src)) / "a.txt").read_text() == "hello\n"


def test_forget_usage_errors(cli: AmberCli) -> None:
    one_line_error(cli.run("forget", check=False), 2, "no policy given")
    one_line_error(cli.run("forget", "--keep-within", "3x", check=False), 2, "invalid duration")
    one_line_error(cli.run("forget", "--group-by", "colour", "-l", "1", check=False), 2, "group-by")
    one_line_error(cli.run("forget", "--keep-last", "1", "deadbeef", check=False), 2, "not both")
    one_line_error(cli.run("forget", "deadbeef", check=False), 15, "no snapshot")


def test_forget_prune_reclaims_space(cli: AmberCli, tmp_path: Path) -> None:
    src = make_src(tmp_path)
    (src / "big.bin").write_bytes(os.urandom(3 << 20))
    cli.run("backup", str(src))
    (src / "big.bin").unlink()
    cli.run("backup", str(src))
    packs = lambda: sum(p.stat().st_size for p in (cli.repo / "data").rglob("*") if p.is_file())  # noqa: E731
    before = packs()
    res = cli.run("forget", "--keep-last", "1", "--prune")
    assert "removed 1 snapshot" in res.stdout and "prune:" in res.stdout
    assert packs() < before - (2 << 20)
    cli.run("check", "--read-data")


def test_append_only_repository_refuses_forget_prune_and_key_changes(tmp_path: Path) -> None:
    cli = AmberCli(tmp_path / "repo", tmp_path)
    assert "append-only" in cli.run("init", "--append-only").stdout
    src = make_src(tmp_path)
    cli.run("backup", str(src))
    cli.run("backup", str(src))
    before = snapshot_ids(cli)
    one_line_error(cli.run("forget", "--keep-last", "1", check=False), 20, "append-only")
    one_line_error(cli.run("forget", before[0], check=False), 20, "append-only")
    one_line_error(cli.run("prune", check=False), 20, "append-only")
    pw = tmp_path / "new-pw"
    pw.write_text("another password\n")
    one_line_error(cli.run("key", "passwd", "--new-password-file", str(pw), check=False), 20, "append-only")
    assert "would remove 1 snapshot" in cli.run("forget", "--keep-last", "1", "--dry-run").stdout
    assert snapshot_ids(cli) == before
    cli.run("check", "--read-data")


def test_append_only_key_in_a_normal_repository(cli: AmberCli, tmp_path: Path) -> None:
    pw = tmp_path / "append-pw"
    pw.write_text(APPEND_PW + "\n")
    added = cli.run("key", "add", "--append-only", "--new-password-file", str(pw))
    assert "append-only" in added.stdout
    # the honest limit is said every time (design §21): the key binds an honest client only
    assert "limits an honest amber client, not a compromised one" in added.stderr
    assert "rclone serve restic --append-only" in added.stderr and "Object Lock" in added.stderr
    listing = cli.run("key", "list").stdout.splitlines()
    assert sum("append-only" in line for line in listing) == 1 and len(listing) == 2
    admin_key = next(line[1:9] for line in listing if line.startswith("*"))

    client = {"AMBER_PASSWORD": APPEND_PW}
    src = make_src(tmp_path)
    cli.run("backup", str(src), env=client)
    cli.run("backup", str(src), env=client)
    one_line_error(cli.run("forget", "--keep-last", "1", env=client, check=False), 20, "append-only")
    one_line_error(cli.run("key", "remove", admin_key, env=client, check=False), 20, "append-only")
    assert len(snapshot_ids(cli, client)) == 2

    res = cli.run("forget", "--keep-last", "1")  # the full key may clean up
    assert "removed 1 snapshot" in res.stdout
    assert len(snapshot_ids(cli)) == 1


def test_unlock_without_stale_locks(cli: AmberCli) -> None:
    res = cli.run("unlock")
    assert "removed 0 locks, 0 left" in res.stdout
    res = cli.run("unlock", "--remove-all")
    assert "warning" in res.stderr and "removed 0 locks" in res.stdout
