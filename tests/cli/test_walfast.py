"""Which wal-push / wal-get calls take the lean start, and that it keeps the CLI's contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from amber.cli.walfast import LeanCall, parse
from tests.conftest import PASSWORD, AmberCli

SEG = "000000010000000000000001"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AMBER_REPOSITORY", "AMBER_PASSWORD_FILE", "AMBER_PASSWORD_COMMAND", "AMBER_CONFIG",
                 "AMBER_PG_CLUSTER", "AMBER_PASSWORD"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["-r", "/r", "--password-file", "/p", "pg", "wal-push", "/w/" + SEG],
         LeanCall("wal-push", ["/w/" + SEG], "/r", "/p", None, "main", False)),
        (["--repo=sftp:h:/r", "--password-command", "pass x", "--debug",
          "wal-get", SEG, "/d", "--cluster", "db2"],
         LeanCall("wal-get", [SEG, "/d"], "sftp:h:/r", None, "pass x", "db2", True)),
        (["-r", "/r", "--password-file", "/p", "pg", "wal-fetch", SEG, "/d"],
         LeanCall("wal-get", [SEG, "/d"], "/r", "/p", None, "main", False)),
        (["-r", "/r", "--password-file", "/p", "wal-push", "--cluster=x", "/w"],
         LeanCall("wal-push", ["/w"], "/r", "/p", None, "x", False)),
        (["-r", "/r", "--password-file", "/p", "pg", "wal-push", "--async", "/w"],
         LeanCall("wal-push", ["/w"], "/r", "/p", None, "main", False, True)),
    ],
)  # fmt: skip
def test_lean_calls(argv: list[str], expected: LeanCall) -> None:
    assert parse(argv) == expected


@pytest.mark.parametrize(
    "argv",
    [
        ["-r", "main", "--password-file", "/p", "wal-push", "/w"],  # a configured name: the config file says
        ["-r", "/r", "wal-push", "/w"],  # no password source: perhaps a configured one
        ["-r", "/r", "--password-file", "/p", "wal-push", "--job", "j", "/w"],
        ["-r", "/r", "--password-file", "/p", "wal-push", "--help"],
        ["-r", "/r", "--password-file", "/p", "-o", "timeout=5", "wal-push", "/w"],
        ["-r", "/r", "--password-file", "/p", "wal-get", SEG],  # too few arguments: the CLI says so
        ["-r", "/r", "--password-file", "/p", "backup", "/w"],
        ["-r", "/r", "--password-file", "/p", "wal-fetch", SEG, "/d"],  # only under pg
        ["-r", "/r", "--password-file", "/p", "wal-get", "--async", SEG, "/d"],  # only wal-push has it
        ["-r"],
    ],
)
def test_other_calls_go_to_the_full_command_line(argv: list[str]) -> None:
    assert parse(argv) is None


def test_the_lean_path_keeps_exit_codes_and_one_line_errors(cli: AmberCli, tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    seg = tmp_path / SEG
    seg.write_bytes(b"wal" * 1000)
    lean = {"AMBER_PASSWORD_FILE": str(pw)}
    assert cli.run("wal-push", str(seg), env=lean).returncode == 0
    seg.write_bytes(b"other" * 1000)
    conflict = cli.run("pg", "wal-push", str(seg), env=lean, check=False)
    assert (
        conflict.returncode == 40
        and conflict.stderr.count("\n") == 1
        and "different content" in conflict.stderr
    )
    missing = cli.run("wal-get", "00000001000000000000000A", str(tmp_path / "x"), env=lean, check=False)
    assert missing.returncode == 41 and missing.stderr.startswith("amber: ")
    pw.write_text("wrong\n")
    assert cli.run("wal-push", str(seg), env=lean, check=False).returncode == 12  # even with a cached key


def test_amber_wal_async_batches_through_the_lean_path(cli: AmberCli, tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    status = tmp_path / "pg_wal" / "archive_status"
    status.mkdir(parents=True)
    names = [f"0000000100000000000000{n:02X}" for n in (1, 2, 3)]
    for name in names:
        (tmp_path / "pg_wal" / name).write_bytes(name.encode() * 1000)
        (status / f"{name}.ready").touch()
    env = {"AMBER_PASSWORD_FILE": str(pw), "AMBER_WAL_ASYNC": "1"}
    cli.run("wal-push", str(tmp_path / "pg_wal" / names[0]), env=env)
    index = sorted((cli.repo / "index").iterdir())
    records = sorted(p.name for p in (cli.repo / "wal").iterdir())
    assert len(index) == 1 and records == [f"main.{n}.rec" for n in names]  # one batch
    away = cli.repo.with_name("away")
    cli.repo.rename(away)  # the marker answers without opening the repository
    cli.run("wal-push", str(tmp_path / "pg_wal" / names[1]), env=env)
    (tmp_path / "pg_wal" / names[2]).write_bytes(b"changed")  # a marker vouches for its content only
    assert cli.run("wal-push", str(tmp_path / "pg_wal" / names[2]), env=env, check=False).returncode != 0
    away.rename(cli.repo)
    assert cli.run("wal-push", str(tmp_path / "pg_wal" / names[2]), env=env, check=False).returncode == 40
    (tmp_path / "pg_wal" / names[2]).write_bytes(names[2].encode() * 1000)
    cli.run("wal-get", names[2], str(tmp_path / "back"), env=env)
    assert (tmp_path / "back").read_bytes() == names[2].encode() * 1000
