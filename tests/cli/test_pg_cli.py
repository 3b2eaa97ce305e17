"""amber pg list / check on a repository with archived WAL (no server needed)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import AmberCli

SEG = "000000010000000000000001"


def test_pg_check_and_list_report_the_archive(cli: AmberCli, tmp_path: Path) -> None:
    seg = tmp_path / SEG
    seg.write_bytes(b"wal bytes " * 500)
    cli.run("pg", "wal-push", str(seg), "--cluster", "db1")
    listed = json.loads(cli.run("pg", "list", "--json").stdout)
    assert [(c["cluster"], c["wal_files"], c["first_segment"]) for c in listed] == [("db1", 1, SEG)]
    assert "checked 1 WAL files, 1 read; no errors found" in cli.run("pg", "check", "--read-data").stdout

    stored = cli.repo / "wal" / f"db1.{SEG}"
    damaged = bytearray(stored.read_bytes())
    damaged[-1] ^= 0xFF
    stored.write_bytes(bytes(damaged))
    assert cli.run("pg", "check").returncode == 0  # names only
    result = cli.run("pg", "check", "--read-data", check=False)
    assert result.returncode == 18 and f"db1.{SEG}" in result.stderr
    assert cli.run("check", "--read-data", check=False).returncode == 18
