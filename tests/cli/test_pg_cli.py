"""amber pg list / check on a repository with archived WAL (no server needed)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import AmberCli
from tests.sources.databases.jobs import job_config

SEG = "000000010000000000000001"


def test_pg_check_and_list_report_the_archive(cli: AmberCli, tmp_path: Path) -> None:
    seg = tmp_path / SEG
    seg.write_bytes(b"wal bytes " * 500)
    cli.run("pg", "wal-push", str(seg), "--cluster", "db1")
    listed = json.loads(cli.run("pg", "list", "--json").stdout)
    assert [(c["cluster"], c["wal_files"], c["first_segment"]) for c in listed] == [("db1", 1, SEG)]
    assert "checked 1 WAL files, 1 read; no errors found" in cli.run("pg", "check", "--read-data").stdout

    stored = cli.repo / "wal" / f"db1.{SEG}.rec"
    damaged = bytearray(stored.read_bytes())
    damaged[-1] ^= 0xFF
    stored.write_bytes(bytes(damaged))
    assert cli.run("pg", "check", check=False).returncode == 18  # records are always authenticated
    result = cli.run("pg", "check", "--read-data", check=False)
    assert result.returncode == 18 and f"db1.{SEG}" in result.stderr
    assert cli.run("check", "--read-data", check=False).returncode == 18


def test_a_configured_repository_name_works_through_the_full_command_line(tmp_path: Path) -> None:
    cfg = job_config(tmp_path, "", paths=[str(tmp_path)])  # repository "main" with a password file, job "dbs"
    cli = AmberCli(tmp_path / "main", tmp_path)
    seg = tmp_path / SEG
    seg.write_bytes(b"configured " * 300)
    no_env = {"AMBER_REPOSITORY": "", "AMBER_PASSWORD": ""}
    cli.run("--config", str(cfg), "-r", "main", "pg", "wal-push", str(seg), env=no_env)
    cli.run("--config", str(cfg), "pg", "wal-get", "--job", "dbs", SEG, str(tmp_path / "back"), env=no_env)
    assert (tmp_path / "back").read_bytes() == seg.read_bytes()
    out = cli.run("--config", str(cfg), "pg", "list", "--job", "dbs", "--json", env=no_env).stdout
    listed = json.loads(out)
    assert listed[0]["wal_files"] == 1
