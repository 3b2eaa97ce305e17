"""`amber watch` end to end: real inotify, a real repository, the real CLI, stopped by SIGTERM.

Times are never asserted: each check polls until the snapshot it expects exists
(bounded by a generous deadline); the one negative check (an excluded change)
gives the watcher several intervals to misbehave.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from amber.ops.state import job_lock
from amber.ops.watch.history import WatchHistory
from tests.conftest import PASSWORD, AmberCli

INTERVAL = 1.0
DEADLINE = 90.0


def _config(tmp: Path, src: Path) -> Path:
    (tmp / "pass").write_text(PASSWORD + "\n")
    cfg = tmp / "config.toml"
    cfg.write_text(f"""
[repositories.main]
url = "{tmp / "repo"}"
password_file = "{tmp / "pass"}"

[jobs.w]
paths = ["{src}"]
exclude = ["{src / "skip"}", "*.tmp"]
watch_interval = "{INTERVAL:g}s"
""")
    return cfg


def _until(what: str, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"no snapshot with {what} within {DEADLINE:g}s")
        time.sleep(0.3)


def _snapshots(cli: AmberCli) -> list[dict[str, object]]:
    return list(json.loads(cli.run("snapshots", "--json").stdout))


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _listing(cli: AmberCli) -> set[str]:
    return set(cli.run("ls", "latest").stdout.split())


@pytest.mark.slow
def test_watch_snapshots_changes_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "skip").mkdir()
    (src / "a" / "f").write_text("v1\n")
    (src / "a" / "gone").write_text("to be deleted\n")
    cli = AmberCli(tmp_path / "repo", tmp_path)
    cli.run("init")
    cfg = _config(tmp_path, src)
    proc = cli.popen("--config", str(cfg), "watch", "w", "--no-check")
    try:
        _until("the first full walk", lambda: len(_snapshots(cli)) == 1)

        (src / "a" / "f").write_text("v2\n")
        _until("the change", lambda: cli.run("dump", "latest", str(src / "a" / "f")).stdout == "v2\n")

        os.unlink(src / "a" / "gone")
        _until("the deletion", lambda: str(src / "a" / "gone") not in _listing(cli))

        settled = len(_snapshots(cli))
        cpu_before = _cpu_seconds(proc.pid)
        (src / "skip" / "x").write_text("excluded\n")
        (src / "a" / "scratch.tmp").write_text("excluded by name\n")
        time.sleep(INTERVAL * 4)
        assert len(_snapshots(cli)) == settled  # excluded changes start no snapshot
        assert _cpu_seconds(proc.pid) - cpu_before < 0.5  # idle: blocked in poll, no busy loop

        burst = src / "burst"
        burst.mkdir()
        for i in range(1000):
            (burst / f"f{i:04}").write_text(f"{i}\n")
        _until("all 1000 files", lambda: sum(p.startswith(f"{burst}/") for p in _listing(cli)) == 1000)
        assert len(_snapshots(cli)) - settled <= 3  # one burst, one or a few snapshots

        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err.decode()
    assert os.listdir(tmp_path / "repo" / "locks") == []
    state_dir = tmp_path / "xdg-state" / "amber"
    for lock in ("w", "watch:w"):
        with job_lock(str(state_dir), lock):  # free: JobRunning otherwise
            pass
    rows = WatchHistory(str(state_dir / "state.db")).recent("w")
    assert len(rows) >= 3 and all(r.seconds > 0 for r in rows)
    metrics = cli.run("--config", str(cfg), "metrics", "--no-repo-stats").stdout
    assert 'amber_watch_last_rpo_seconds{job="w"}' in metrics


def test_watch_refuses_a_job_without_paths(tmp_path: Path) -> None:
    cli = AmberCli(tmp_path / "repo", tmp_path)
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"""
[repositories.main]
url = "{tmp_path / "repo"}"

[jobs.cmd]
stdin_command = ["echo", "hi"]
""")
    result = cli.run("--config", str(cfg), "watch", "cmd", check=False)
    assert result.returncode == 2 and "watch protects a job's paths" in result.stderr, result.stderr
