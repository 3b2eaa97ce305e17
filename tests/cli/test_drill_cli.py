"""Restore drills end to end: success, a corrupted pack, the record and the alert, PostgreSQL."""

from __future__ import annotations

import glob
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AmberCli, is_root
from tests.receivers import HttpReceiver, free_port, http_receiver_fixture  # noqa: F401 (fixture)


def make_tree(root: Path, count: int = 40) -> Path:
    root.mkdir(parents=True)
    for i in range(count):
        (root / f"file{i:03d}.bin").write_bytes(os.urandom(2000 + i * 997))
    return root


def drills(cli: AmberCli) -> list[dict[str, Any]]:
    db = Path(cli.env["XDG_STATE_HOME"], "amber", "state.db")
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM drills ORDER BY id")]


def drill_json(cli: AmberCli, *args: str, check: bool = True,
               env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:  # fmt: skip
    result = cli.run("drill", "--json", *args, check=check, env=env)
    return result.returncode, json.loads(result.stdout.splitlines()[-1])


def test_sample_drill_succeeds_and_is_recorded(cli: AmberCli, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    cli.run("backup", str(src))
    (src / "file000.bin").write_bytes(b"changed")
    cli.run("backup", str(src))
    code, report = drill_json(cli, "--files", "7", "--seed", "11")
    assert code == 0 and report["status"] == "success" and report["files"] == 7
    assert report["bytes"] > 0 and report["throughput"] > 0 and report["estimated_full_seconds"] > 0
    _, again = drill_json(cli, "--files", "7", "--seed", "11")
    assert again["snapshot_ids"] == report["snapshot_ids"]  # a seed repeats the drill
    _, by_bytes = drill_json(cli, "--bytes-percent", "50")
    assert by_bytes["bytes"] >= 0.5 * sum(f.stat().st_size for f in src.iterdir()) * 0.9
    rows = drills(cli)
    assert [r["status"] for r in rows] == ["success"] * 3 and rows[0]["seed"] == 11
    assert not list(Path(tempfile.gettempdir()).glob("amber-drill-*/0/000000"))  # scratch removed
    status = cli.run("status", "--drills").stdout
    assert f"{cli.repo}: 3/3 drills passed (100%)" in status and "seed 11" in status


def corrupt_largest_pack(repo: Path) -> None:
    pack = max(glob.glob(str(repo / "data" / "*" / "*")), key=os.path.getsize)
    data = bytearray(Path(pack).read_bytes())
    for offset in range(200, len(data) // 2, 4096):
        data[offset] ^= 0x55
    os.chmod(pack, 0o600)
    Path(pack).write_bytes(bytes(data))


def test_drill_detects_a_corrupted_pack_and_alerts(
    cli: AmberCli, tmp_path: Path, http_receiver: HttpReceiver
) -> None:
    src = make_tree(tmp_path / "src")
    cli.run("backup", str(src))
    config = tmp_path / "amber.toml"
    config.write_text(f"""
[repositories.main]
url = "{cli.repo}"
password_env = "AMBER_PASSWORD"

[jobs.home]
paths = ["{src}"]

[[notify]]
url = "{http_receiver.url('json', '/alerts')}"
events = ["integrity", "failure"]
""")
    corrupt_largest_pack(cli.repo)
    env = {"AMBER_CONFIG": str(config)}
    code, report = drill_json(cli, "--job", "home", "--files", "40", check=False, env=env)
    assert code == 14
    assert report["status"] == "integrity" and report["repository"] == "main" and report["failures"]
    alert = http_receiver.wait(1)[0].json()
    assert "INTEGRITY" in alert["title"] and "home" in alert["title"]
    assert "restore drill of main failed" in alert["message"] and alert["type"] == "failure"
    row = drills(cli)[-1]
    assert row["status"] == "integrity" and row["job"] == "home" and json.loads(row["failures"])
    status = cli.run("status", "--drills", env=env).stdout
    assert "main: 0/1 drills passed (0%)" in status and "FAILED" in status


PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


@pytest.fixture
def pg_cluster() -> Iterator[tuple[Path, Path]]:
    """A stopped PostgreSQL cluster holding table t with 42 rows; returns (data dir, bin dir)."""
    if not PG_BIN:
        pytest.skip("PostgreSQL is not installed (scripts/test.sh installs it)")
    pgbin = Path(PG_BIN[-1])
    base = Path(tempfile.mkdtemp(prefix="amber-pg-"))  # outside pytest's 0700 tree: postgres must reach it
    os.chmod(base, 0o755)
    data = base / "data"
    if is_root():
        shutil.chown(base, "postgres", "postgres")
    try:
        port = free_port()
        run_pg([str(pgbin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
        log = str(base / "server.log")
        options = f"-p {port} -k {base}"
        run_pg([str(pgbin / "pg_ctl"), "-D", str(data), "-w", "-l", log, "-o", options, "start"])
        try:
            run_pg([str(pgbin / "psql"), "-h", str(base), "-p", str(port), "-U", "postgres", "-v",
                    "ON_ERROR_STOP=1", "-c", "CREATE TABLE t AS SELECT g AS n FROM generate_series(1, 42) g"])
        finally:
            run_pg([str(pgbin / "pg_ctl"), "-D", str(data), "-w", "-m", "fast", "stop"])
        yield data, pgbin
    finally:
        shutil.rmtree(base, ignore_errors=True)


def run_pg(cmd: list[str]) -> None:
    if is_root():
        cmd = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *cmd]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120, cwd="/")


def pg_check(pgbin: Path, expected: int) -> str:
    """The application check: start postgres on the restored data dir and count rows."""
    as_pg = "setpriv --reuid=postgres --regid=postgres --init-groups " if is_root() else ""
    port = free_port()
    return (
        f'cd / && D="$AMBER_DRILL_PATH" && '
        f'{as_pg}{pgbin}/pg_ctl -D "$D" -w -o "-p {port} -k $D" -l "$D/drill.log" start >/dev/null && '
        f'n=$({as_pg}{pgbin}/psql -h "$D" -p {port} -U postgres -Atc "SELECT count(*) FROM t"); '
        f'{as_pg}{pgbin}/pg_ctl -D "$D" -w -m fast stop >/dev/null; '
        f'echo "rows: $n"; test "$n" = {expected}'
    )


def test_full_drill_starts_postgresql_on_the_restored_data(
    cli: AmberCli, pg_cluster: tuple[Path, Path]
) -> None:
    data, pgbin = pg_cluster
    cli.run("backup", str(data))
    code, report = drill_json(cli, "--command", pg_check(pgbin, 42))
    assert code == 0, report
    assert report["status"] == "success" and report["mode"] == "full" and report["command_exit"] == 0
    assert "rows: 42" in report["command_output"]
    assert report["files"] > 100  # the whole cluster was restored and verified

    code, report = drill_json(cli, "--command", pg_check(pgbin, 43), check=False)
    assert code == 24 and report["status"] == "command_failed" and "rows: 42" in report["command_output"]
