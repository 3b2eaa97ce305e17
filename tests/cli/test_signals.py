"""SIGTERM, SIGHUP and SIGINT stop `amber backup` and `amber run` cleanly (issue 12, 1.3).

The source is slow on purpose: a command that writes a few MiB and then sleeps,
so the signal arrives while the backup is running. A cancel kills that command,
the archiver stops at its next safe point, the lock is released and the exit
code names the signal. `amber run` records the run as interrupted and alerts.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from amber.ops.state import StateDB
from tests.conftest import AmberCli
from tests.receivers import (  # noqa: F401 (fixtures)
    HttpReceiver,
    http_receiver_fixture,
)

SLOW = "head -c 3000000 /dev/urandom; [ -e {flag} ] || exec sleep 60"


def slow_command(tmp_path: Path) -> list[str]:
    return ["sh", "-c", SLOW.format(flag=tmp_path / "fast")]


def wait_until_locked(repo: Path, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not list((repo / "locks").iterdir()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the backup never took its lock"
        time.sleep(0.05)
    time.sleep(0.7)  # reading the command's output by now


def popen(cli: AmberCli, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "amber", *args], env=cli.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def audit_records(cli: AmberCli) -> list[dict[str, object]]:
    log = Path(cli.env["XDG_STATE_HOME"], "amber", "audit.log")
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code", "word"), [(signal.SIGTERM, 143, "terminated"),
                                                      (signal.SIGHUP, 129, "hung up")])  # fmt: skip
def test_backup_stops_at_a_safe_point(
    cli: AmberCli, tmp_path: Path, signum: int, code: int, word: str
) -> None:
    proc = popen(cli, "backup", "--stdin-from-command", "--", *slow_command(tmp_path))
    wait_until_locked(cli.repo, proc)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert f"amber: {word}" in err.decode() and "Traceback" not in err.decode()
    assert list((cli.repo / "locks").iterdir()) == []  # released
    assert list((cli.repo / "snapshots").iterdir()) == []  # no partial snapshot
    assert audit_records(cli)[-1]["exit_code"] == code
    cli.run("check", "--read-data")
    (tmp_path / "fast").touch()
    cli.run("backup", "--stdin-from-command", "--", *slow_command(tmp_path))  # the next run completes
    assert len(list((cli.repo / "snapshots").iterdir())) == 1


def run_config(tmp_path: Path, notify_url: str) -> Path:
    path = tmp_path / "config.toml"
    command = json.dumps(slow_command(tmp_path))
    path.write_text(f"""
[repositories.local]
url = "{tmp_path / 'repo'}"
password_env = "AMBER_PASSWORD"

[jobs.db]
stdin_command = {command}
stdin_filename = "dump.bin"
repository = "local"

[jobs.later]
stdin_command = ["echo", "never started"]
repository = "local"

[[notify]]
url = "{notify_url}"
events = ["failure"]

[state]
path = "{tmp_path / 'state' / 'state.db'}"
audit_log = "{tmp_path / 'state' / 'audit.log'}"
""")
    return path


def runs(tmp_path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(tmp_path / "state" / "state.db") as db:
        return list(db.execute("SELECT job, status, errors FROM runs ORDER BY id"))


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_run_is_recorded_as_interrupted_and_alerts(
    cli: AmberCli, tmp_path: Path, http_receiver: HttpReceiver, signum: int, code: int
) -> None:
    config = run_config(tmp_path, http_receiver.url("json", "/alert"))
    proc = popen(cli, "--config", str(config), "run", "db", "later")
    wait_until_locked(cli.repo, proc)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err.decode()
    assert [(job, status) for job, status, _ in runs(tmp_path)] == [("db", "interrupted")]  # no next job
    assert "KeyboardInterrupt" not in runs(tmp_path)[0][2]
    alert = http_receiver.wait(1)[0].json()
    assert "db" in alert["title"] + alert["message"] and "interrupted" in alert["message"]
    assert list((cli.repo / "locks").iterdir()) == []
    audit = (tmp_path / "state" / "audit.log").read_text().splitlines()
    jobs = [r for r in map(json.loads, audit) if r["command"] == "job"]
    assert [(r["args"], r["exit_code"]) for r in jobs] == [(["db"], code)]  # the job's own record
    (tmp_path / "fast").touch()
    cli.run("--config", str(config), "run", "db")  # the next run completes
    assert [status for _, status, _ in runs(tmp_path)] == ["interrupted", "success"]


def test_the_first_signal_waits_for_a_safe_point_only_when_a_loop_watches() -> None:
    import os

    from amber.cancel import CancelToken
    from amber.cli.signals import cancelling_on_signals
    from amber.errors import HungUp, Terminated

    before = signal.getsignal(signal.SIGTERM)
    watched = CancelToken().watch()
    with cancelling_on_signals(watched):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)  # the handler runs between bytecodes of this thread
        assert isinstance(watched.reason, Terminated)
        with pytest.raises(KeyboardInterrupt):  # a second signal: at once
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
    unwatched = CancelToken()
    with pytest.raises(KeyboardInterrupt), cancelling_on_signals(unwatched):
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(1)
    assert isinstance(unwatched.reason, HungUp)  # the exit code is still the signal's
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored afterwards


@pytest.mark.slow
def test_the_daemon_exits_143_when_sigterm_interrupts_a_job(
    cli: AmberCli, tmp_path: Path, http_receiver: HttpReceiver
) -> None:
    config = run_config(tmp_path, http_receiver.url("json", "/alert"))
    scheduled = 'stdin_filename = "dump.bin"\nschedule = "hourly"\n'
    config.write_text(config.read_text().replace('stdin_filename = "dump.bin"\n', scheduled))
    StateDB(str(tmp_path / "state" / "state.db")).set_stamp("run:db", dt.datetime(2020, 1, 1).timestamp())
    proc = popen(cli, "--config", str(config), "daemon", "--tick", "0.2")
    wait_until_locked(cli.repo, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "amber: job db terminated" in err.decode() and "Traceback" not in err.decode()
    assert b"db: interrupted" in out
    assert [(job, status) for job, status, _ in runs(tmp_path)] == [("db", "interrupted")]
    assert list((cli.repo / "locks").iterdir()) == []
    assert "interrupted" in http_receiver.wait(1)[0].json()["message"]


def test_backup_stdin_stops_while_the_pipe_is_silent(cli: AmberCli) -> None:
    """SIGTERM arrives while `backup --stdin` waits in a read of an open, silent pipe."""
    pipe = subprocess.PIPE
    proc = subprocess.Popen([sys.executable, "-m", "amber", "backup", "--stdin"], env=cli.env,
                            stdin=pipe, stdout=pipe, stderr=pipe)  # fmt: skip
    assert proc.stdin is not None
    try:
        proc.stdin.write(b"some data, then nothing\n" * 1000)
        proc.stdin.flush()  # the pipe stays open: without a cancellable read, amber waits for more
        wait_until_locked(cli.repo, proc)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)  # with the pipe still open: prompt, not at the writer's next bytes
        _, err = proc.communicate()
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert "amber: terminated" in err.decode() and "Traceback" not in err.decode()
    assert list((cli.repo / "locks").iterdir()) == []
    assert list((cli.repo / "snapshots").iterdir()) == []
    cli.run("check", "--read-data")
