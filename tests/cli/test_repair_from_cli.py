"""`amber repair --from REPLICA` (alias of `repair packs --from`), and what it says it examined."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_copy_cli import make_src, other_repo, tree
from tests.conftest import AmberCli

pytestmark = pytest.mark.slow


def test_repair_from_says_what_it_did_not_read(cli: AmberCli, tmp_path: Path) -> None:
    src = make_src(tmp_path / "src")
    cli.run("backup", str(src))
    replica, replica_pw = other_repo(cli, tmp_path, "replica", "replica secret")
    cli.run("copy", "--to", str(replica), "--to-password-file", str(replica_pw))
    pack = max((p for p in (cli.repo / "data").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data = bytearray(pack.read_bytes())
    data[len(data) // 3] ^= 0xFF  # damage inside a pack: present, right size
    pack.write_bytes(bytes(data))
    assert cli.run("check", "--read-data", check=False).returncode == 18
    from_args = ("--from", str(replica), "--from-password-file", str(replica_pw))

    quick = cli.run("repair", *from_args)
    assert "NOT read" in quick.stdout and "--read-data" in quick.stdout
    assert "no missing or damaged blobs found" not in quick.stdout
    assert cli.run("check", "--read-data", check=False).returncode == 18  # honest: nothing was healed

    healed = cli.run("repair", *from_args, "--read-data")
    assert "healed 1 snapshot(s)" in healed.stdout
    cli.run("check", "--read-data")
    cli.run("restore", "latest", "--target", str(tmp_path / "out"), "--verify")
    assert tree(tmp_path / "out" / src.relative_to("/")) == tree(src)


def test_repair_without_subcommand_or_from_is_a_usage_error(cli: AmberCli) -> None:
    result = cli.run("repair", check=False)
    assert result.returncode == 2 and "--from REPLICA" in result.stderr
    mixed = cli.run("repair", "--from", "x", "index", check=False)
    assert mixed.returncode == 2
