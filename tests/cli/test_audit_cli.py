"""The audit log end to end: every command is recorded; tampering of any kind is detected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AmberCli

BROKEN = 23


def log_path(cli: AmberCli) -> Path:
    return Path(cli.env["XDG_STATE_HOME"], "amber", "audit.log")


def records(cli: AmberCli) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log_path(cli).read_text().splitlines()]


def write_records(cli: AmberCli, recs: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n" for r in recs)
    log_path(cli).write_text(text)


@pytest.fixture
def busy(cli: AmberCli, tmp_path: Path) -> AmberCli:
    """A repository with some history: init, two backups, a restore, a failed command."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("hello")
    cli.run("backup", str(src))
    (src / "b.txt").write_text("world")
    cli.run("backup", str(src), "--tag", "x")
    cli.run("restore", "latest", "--target", str(tmp_path / "out"))
    cli.run("restore", "nope", "--target", str(tmp_path / "out2"), check=False)
    return cli


def test_operations_are_recorded_with_who_what_and_result(busy: AmberCli) -> None:
    recs = records(busy)
    assert [r["command"] for r in recs] == ["init", "backup", "backup", "restore", "restore"]
    assert [r["seq"] for r in recs] == [1, 2, 3, 4, 5]
    assert recs[2]["args"][-2:] == ["--tag", "x"]
    assert recs[3]["exit_code"] == 0 and recs[4]["exit_code"] == 15
    assert "nope" in recs[4]["error"]
    assert all(r["user"] and r["host"] and r["time"] for r in recs)
    assert all(r["repository"] == str(busy.repo) for r in recs)
    shown = busy.run("audit", "show").stdout
    assert "restore" in shown and "exit 15" in shown
    assert busy.run("audit", "verify").returncode == 0
    assert len(records(busy)) == 5  # show and verify are not recorded themselves


def test_secret_arguments_are_not_logged(busy: AmberCli) -> None:
    busy.run("--password-command", "echo hunter2", "snapshots", check=False)
    assert "hunter2" not in log_path(busy).read_text()
    assert records(busy)[-1]["args"][:2] == ["--password-command", "***"]


def test_modified_record_is_detected(busy: AmberCli) -> None:
    recs = records(busy)
    recs[2]["args"] = ["backup", "/something/else"]
    write_records(busy, recs)
    result = busy.run("audit", "verify", "--local", check=False)
    assert result.returncode == BROKEN
    assert "record 3" in result.stderr and "modified" in result.stderr


def test_removed_record_is_detected(busy: AmberCli) -> None:
    recs = records(busy)
    del recs[1]
    write_records(busy, recs)
    result = busy.run("audit", "verify", "--local", check=False)
    assert result.returncode == BROKEN and "record 2" in result.stderr


def test_reordered_records_are_detected(busy: AmberCli) -> None:
    recs = records(busy)
    recs[1], recs[2] = recs[2], recs[1]
    write_records(busy, recs)
    result = busy.run("audit", "verify", "--local", check=False)
    assert result.returncode == BROKEN and "out of order" in result.stderr


def test_truncated_tail_is_detected_by_the_head_file(busy: AmberCli) -> None:
    write_records(busy, records(busy)[:3])
    result = busy.run("audit", "verify", "--local", check=False)
    assert result.returncode == BROKEN and "truncated" in result.stderr


def test_truncated_tail_is_detected_against_the_repository_copy(busy: AmberCli) -> None:
    assert "replicated 5" in busy.run("audit", "push").stdout
    assert "replicated 1" in busy.run("audit", "push").stdout  # the first push was recorded too
    write_records(busy, records(busy)[:4])
    head = log_path(busy).with_name("audit.log.head")
    head.unlink()  # a careful attacker removes the local anchor too
    assert busy.run("audit", "verify", "--local").returncode == 0
    result = busy.run("audit", "verify", check=False)
    assert result.returncode == BROKEN
    assert "record 5" in result.stderr and "repository" in result.stderr


def test_rewritten_log_is_detected_against_the_repository_copy(busy: AmberCli, tmp_path: Path) -> None:
    """Rehashing the whole chain fools the local check, not the repository copy."""
    from amber.services import audit_chain

    busy.run("audit", "push")
    recs = records(busy)
    recs[1]["args"] = ["backup", "/forged"]
    rebuilt: list[dict[str, Any]] = []
    for r in recs:
        fields = {k: v for k, v in r.items() if k not in ("seq", "prev", "hash")}
        rebuilt.append(audit_chain.chain(rebuilt[-1] if rebuilt else None, fields))
    write_records(busy, rebuilt)
    log_path(busy).with_name("audit.log.head").unlink()
    result = busy.run("audit", "verify", check=False)
    assert result.returncode == BROKEN and "record" in result.stderr and "repository" in result.stderr
    assert busy.run("audit", "push", check=False).returncode != 0  # and a forged log is never replicated


def test_audit_objects_are_encrypted_in_the_repository(busy: AmberCli) -> None:
    busy.run("audit", "push")
    objects = list((busy.repo / "audit").iterdir())
    assert len(objects) == 1
    assert b"backup" not in objects[0].read_bytes()
