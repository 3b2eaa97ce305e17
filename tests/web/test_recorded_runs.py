"""Live views of runs other processes start: the state database's run_progress rows (issue 17)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from amber.ops.config.model import Config
from amber.ops.run.progress_log import STALE_AFTER, ProgressLog, ProgressRecorder, ProgressRow
from amber.web.live import LiveRun, Runner
from amber.web.recorded import RecordedRuns
from tests.ops.test_run import load, make_config


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_recorder_writes_at_most_once_a_second_and_counts_only_the_backup_step(tmp_path: Path) -> None:
    log, clock = ProgressLog(str(tmp_path / "state.db")), Clock()
    recorder = ProgressRecorder(log, "home", lambda _m: None, clock)
    assert log.running(clock.now)["home"].phase == "starting"  # written at once

    recorder.notice("step", "backup main")
    for _ in range(5):
        recorder.file_done(b"/a", 10, "new")
        recorder.bytes_done(10)
    assert log.running(clock.now)["home"].files == 0  # within the second: not written yet
    clock.now += 1.5
    recorder.file_done(b"/b", 10, "new")
    row = log.running(clock.now)["home"]
    assert (row.phase, row.files, row.bytes, row.pid) == ("backing up", 6, 50, os.getpid())

    recorder.notice("step", "check main")  # later steps change the phase only
    recorder.file_done(b"/c", 10, "new")
    clock.now += 2
    recorder.bytes_done(99)
    row = log.running(clock.now)["home"]
    assert (row.phase, row.files, row.bytes) == ("check main", 6, 50)

    recorder.close()
    assert log.running(clock.now) == {}


def test_rows_of_dead_processes_and_stale_rows_are_ignored(tmp_path: Path) -> None:
    log = ProgressLog(str(tmp_path / "state.db"))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)  # fmt: skip
    now = time.time()
    log.write(ProgressRow("gone", int(dead.stdout), now, now))
    log.write(ProgressRow("hung", os.getpid(), now - 3 * STALE_AFTER, now - 2 * STALE_AFTER))
    log.write(ProgressRow("live", os.getpid(), now, now))
    assert sorted(log.running(now)) == ["live"]


def _views(config: Config) -> tuple[Runner, list[LiveRun]]:
    seen: list[LiveRun] = []
    return Runner(config, seen.append), seen


def test_a_dashboard_shows_a_run_another_process_started_until_it_ends(tmp_path: Path) -> None:
    path = make_config(tmp_path, 'hooks = { before = ["sleep 4"] }')
    config = load(path)
    runner, seen = _views(config)
    poller = RecordedRuns(runner)
    poller.poll_once()
    assert "home" not in runner.live

    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "xdg-state"), "XDG_CACHE_HOME": str(tmp_path / "c")}
    proc = subprocess.Popen([sys.executable, "-m", "amber", "--config", str(path), "run", "home"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "home" not in runner.live:
            assert time.monotonic() < deadline and proc.poll() is None, "no progress row seen"
            time.sleep(0.2)
            poller.poll_once()
        live = runner.live["home"]
        assert live.status == "running" and seen and seen[-1] is live
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    poller.poll_once()
    assert live.status == "success" and live.phase == "finished" and live.ended is not None
    assert seen[-1] is live
    announced = len(seen)
    poller.poll_once()  # the run ended: nothing more to say
    assert len(seen) == announced and runner.live["home"] is live


def test_a_run_of_this_process_is_left_to_its_own_view(tmp_path: Path) -> None:
    config = load(make_config(tmp_path))
    runner, _seen = _views(config)
    ours = runner.live["home"] = LiveRun("home", phase="backing up", files=7)
    now = time.time()
    runner.show_recorded({"home": ProgressRow("home", os.getpid(), now, now, "backup main", 1, 2, 0)})
    assert runner.live["home"] is ours and ours.files == 7
