"""The audit log end to end: every command is recorded; tampering of any kind is detected."""

from __future__ import annotations

import json
import shutil
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


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository with some history: init, two backups, a restore, a failed command (built once)."""
    base = tmp_path_factory.mktemp("audit-history")
    cli = AmberCli(base / "repo", base)
    cli.run("init")
    src = base / "src"
    src.mkdir()
    (src / "a.txt").write_text("hello")
    cli.run("backup", str(src))
    (src / "b.txt").write_text("world")
    cli.run("backup", str(src), "--tag", "x")
    cli.run("restore", "latest", "--target", str(base / "out"))
    cli.run("restore", "nope", "--target", str(base / "out2"), check=False)
    return base


@pytest.fixture
def busy(history: Path, tmp_path: Path) -> AmberCli:
    """A private copy of the history (the records name the original repository path)."""
    work = tmp_path / "w"
    shutil.copytree(history, work, symlinks=True)
    return AmberCli(work / "repo", work)


def test_operations_are_recorded_with_who_what_and_result(busy: AmberCli) -> None:
    recs = records(busy)
    assert [r["command"] for r in recs] == ["init", "backup", "backup", "restore", "restore"]
    assert [r["seq"] for r in recs] == [1, 2, 3, 4, 5]
    assert recs[2]["args"][-2:] == ["--tag", "x"]
    assert recs[3]["exit_code"] == 0 and recs[4]["exit_code"] == 15
    assert "nope" in recs[4]["error"]
    assert all(r["user"] and r["host"] and r["time"] for r in recs)
    assert all(r["repository"].endswith("/repo") for r in recs)
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
    assert "replicated 2" in busy.run("audit", "push").stdout  # the rest went with each command
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
    from amber.ops.audit import chain as audit_chain

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


def test_records_reach_the_repository_with_the_next_operation(busy: AmberCli) -> None:
    """Each command that opens the repository replicates the records before it; all encrypted."""
    objects = list((busy.repo / "audit").iterdir())
    assert objects and all(b"backup" not in o.read_bytes() for o in objects)
    result = busy.run("audit", "verify")
    assert "matches the repository copy" in result.stdout
    assert "(2 not yet replicated)" in result.stdout  # records 4 and 5 came after the last open


def test_a_deeply_nested_record_in_the_repository_is_a_clear_integrity_error(busy: AmberCli) -> None:
    """A key holder saves a segment for this log whose record nests 100 000 arrays deep:
    ``audit verify`` reports damaged data (exit 14), not an internal RecursionError."""
    from amber.repository import open_repository
    from amber.repository.audit_store import AuditSegment, save_segment
    from amber.storage import open_backend
    from tests.conftest import PASSWORD

    deep = b'{"seq":1,"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    repo = open_repository(open_backend(str(busy.repo)), PASSWORD.encode())
    try:
        save_segment(repo, AuditSegment(str(records(busy)[0]["hash"]), "evil", 1, [deep]))
    finally:
        repo.close()
    result = busy.run("audit", "verify", check=False)
    assert result.returncode == 14, result.stderr
    assert "malformed record" in result.stderr and "internal error" not in result.stderr


def test_an_argument_that_is_not_utf8_is_recorded_escaped(busy: AmberCli) -> None:
    """A path argument whose bytes are not UTF-8 (a name from the backed-up machine): the
    command's record is written, with the bytes as escapes, and the chain stays intact."""
    import os

    result = busy.run("ls", "latest", os.fsdecode(b"/no/such/dir-\xff\xfe"), check=False)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    last = records(busy)[-1]
    assert last["command"] == "ls" and last["args"][-1] == "/no/such/dir-\\xff\\xfe"
    assert busy.run("audit", "verify", "--local").returncode == 0
