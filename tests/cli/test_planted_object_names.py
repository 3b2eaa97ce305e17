"""Object names in the storage are chosen by whoever can write there, with no key: a snapshot
file named with rich markup and a terminal escape must be shown escaped in every warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import AmberCli

PLANTED = "[i]\x1b[8mzz"  # its first 8 characters: rich markup, then "conceal" for the terminal


@pytest.fixture
def planted(cli: AmberCli, tmp_path: Path) -> AmberCli:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    cli.run("backup", str(src))
    (cli.repo / "snapshots" / PLANTED).write_bytes(b"planted")
    return cli


@pytest.mark.parametrize("args", [
    ("snapshots",),
    ("forget", "--keep-last", "5", "--dry-run"),
    ("rewrite", "--exclude", "nothing", "--dry-run"),
    ("repair", "snapshots", "--dry-run"),
])  # fmt: skip
def test_a_planted_snapshot_name_is_shown_escaped(planted: AmberCli, args: tuple[str, ...]) -> None:
    result = planted.run(*args, check=False)
    assert "\x1b" not in result.stderr, result.stderr  # nothing the terminal acts on
    assert "snapshot [i]\\x1b[8m" in result.stderr, result.stderr  # the markup shown, not applied
