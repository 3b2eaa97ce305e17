"""The built-in scheduler: due jobs, persistent catch-up, one run per missed window, clean stop."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
from pathlib import Path

from amber.ops.config.model import parse_config
from amber.ops.run import job as run_service
from amber.ops.schedule import daemon as daemon_service
from amber.ops.state import StateDB
from tests.ops.test_run import make_config, snapshot_count


def scheduled_config(tmp: Path) -> Path:
    path = make_config(tmp)
    check = 'check = { read_data_subset = "100%" }'
    path.write_text(path.read_text().replace(check, check + '\nschedule = "*-*-* 02:00:00"'))
    return path


def test_catch_up_runs_once_then_waits(tmp_path: Path) -> None:
    cfg = parse_config(scheduled_config(tmp_path).read_text(), "c.toml")
    db = StateDB(cfg.state.path)
    clock = [dt.datetime(2024, 5, 1, 1, 0)]
    opts = daemon_service.DaemonOptions(once=True, now=lambda: clock[0])
    assert daemon_service.due_jobs(cfg, db, clock[0]) == []  # first sight: clock starts now
    clock[0] = dt.datetime(2024, 5, 1, 1, 59)
    assert daemon_service.one_pass(cfg, db, opts) == []
    clock[0] = dt.datetime(2024, 5, 4, 9, 0)  # down for three nights: one catch-up run
    results = daemon_service.one_pass(cfg, db, opts)
    assert [(r.job, r.status) for r in results] == [("home", "success")]
    assert daemon_service.one_pass(cfg, db, opts) == []
    assert snapshot_count(tmp_path / "main") == 1
    clock[0] = dt.datetime(2024, 5, 5, 2, 0)
    assert [r.job for r in daemon_service.one_pass(cfg, db, opts)] == ["home"]


class Ext:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def start(self, config: object) -> None:
        self.calls.append("start")

    def tick(self, config: object) -> None:
        self.calls.append("tick")

    def stop(self) -> None:
        self.calls.append("stop")


def test_serve_once_drives_extensions(tmp_path: Path) -> None:
    cfg = parse_config(scheduled_config(tmp_path).read_text(), "c.toml")
    ext = Ext()
    results = daemon_service.serve(cfg, daemon_service.DaemonOptions(run_service.RunOptions(), once=True,
                                                                     extensions=[ext]))  # fmt: skip
    assert results == [] and ext.calls == ["start", "tick", "stop"]


def test_cli_daemon_catches_up_and_stops_on_sigterm(tmp_path: Path) -> None:
    path = scheduled_config(tmp_path)
    cfg = parse_config(path.read_text(), str(path))
    StateDB(cfg.state.path).set_stamp("run:home", dt.datetime(2020, 1, 1).timestamp())
    proc = subprocess.Popen([sys.executable, "-m", "amber", "--config", str(path), "daemon", "--tick", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        for line in proc.stderr:  # type: ignore[union-attr]
            if "check main: success" in line:
                break
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "home: success" in out
    assert snapshot_count(tmp_path / "main") == 1
    audit = [json.loads(line) for line in Path(cfg.state.audit_log).read_text().splitlines()]
    ops = [(r["command"], r["args"], r["exit_code"]) for r in audit if r["command"] != "config-change"]
    # each job the daemon ran has its own record, then the daemon's own when it stopped
    assert ops == [("job", ["home"], 0), ("daemon", ["--config", str(path), "daemon", "--tick", "0.2"], 0)]
    assert audit[-2]["repository"] == "main"
