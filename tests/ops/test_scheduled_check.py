"""Scheduled standalone checks: due logic, results in the state DB, integrity events."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path

from amber.events import RunEvent, Subscriber
from amber.ops.config.model import Config, parse_config
from amber.ops.run import job as run_service
from amber.ops.run import scheduled_check
from amber.ops.schedule import units
from amber.ops.state import StateDB
from amber.services.context import OperationContext
from amber.services.session import PasswordSource
from tests.conftest import AmberCli
from tests.ops.test_run import make_config


class Recorder(Subscriber):
    def __init__(self) -> None:
        self.events: list[RunEvent] = []

    def run_event(self, event: RunEvent) -> None:
        self.events.append(event)


def config_with_check_schedule(tmp: Path) -> Config:
    path = make_config(tmp, mirrors='["mirror", "usb"]')
    old = 'check = { read_data_subset = "100%" }'
    new = 'check = { read_data_subset = "100%", schedule = "*-*-* 03:00:00" }'
    path.write_text(path.read_text().replace(old, new))
    return parse_config(path.read_text(), str(path))


def test_due_only_after_an_occurrence_since_the_stamp(tmp_path: Path) -> None:
    cfg = config_with_check_schedule(tmp_path)
    db = StateDB(cfg.state.path)
    assert scheduled_check.due_checks(cfg, db, dt.datetime(2024, 5, 1, 1, 0)) == []  # first sight
    assert scheduled_check.due_checks(cfg, db, dt.datetime(2024, 5, 1, 2, 59)) == []
    assert [j.name for j in scheduled_check.due_checks(cfg, db, dt.datetime(2024, 5, 1, 3, 0))] == ["home"]


def test_check_records_results_and_reports_damage(tmp_path: Path) -> None:
    cfg = config_with_check_schedule(tmp_path)
    (backup_run,) = run_service.run_jobs(cfg, ["home"], run_service.RunOptions())
    assert backup_run.status == "success"
    job = cfg.jobs["home"]
    events = Recorder()
    ctx = OperationContext()
    ctx.events.subscribe(events)

    run = scheduled_check.check_job(cfg, job, PasswordSource(), ctx)
    assert run.status == "success" and events.events == []
    assert {(d.name, d.status) for d in run.destinations} == {
        ("main", "success"), ("mirror", "success"), ("usb", "skipped"),
    }  # fmt: skip

    pack = max((tmp_path / "main" / "data").rglob("*"), key=lambda p: p.stat().st_size if p.is_file() else 0)
    raw = bytearray(pack.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    pack.write_bytes(bytes(raw))

    run = scheduled_check.check_job(cfg, job, PasswordSource(), ctx)
    assert run.status == "failed"
    assert [(e.kind, e.repository) for e in events.events] == [("integrity", "main")]
    db = StateDB(cfg.state.path)
    assert [r.status for r in db.runs("check:home")] == ["failed", "success"]
    last = db.last_success("home")  # a check never counts as a backup for the stale-job alert
    assert last is not None and backup_run.record is not None and last.id == backup_run.record.id


def test_units_include_a_timer_for_the_check_schedule(tmp_path: Path) -> None:
    cfg = config_with_check_schedule(tmp_path)
    made = {u.name: units.parse_unit(u.text) for u in units.units_for(cfg, "/etc/amber.toml", ["amber"])}
    assert sorted(made) == ["amber-check-home.service", "amber-check-home.timer"]  # the job has no schedule
    assert made["amber-check-home.timer"]["Timer"]["OnCalendar"] == ["*-*-* 03:00:00"]
    assert made["amber-check-home.service"]["Service"]["ExecStart"] == [
        "amber --config /etc/amber.toml run --check-only home"
    ]
    if shutil.which("systemd-analyze"):
        made_units = units.units_for(cfg, str(tmp_path / "config.toml"), [sys.executable, "-m", "amber"])
        for unit in made_units:
            (tmp_path / unit.name).write_text(unit.text)
        proc = subprocess.run(["systemd-analyze", "verify", *(str(tmp_path / u.name) for u in made_units)],
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert proc.returncode == 0 and "amber-" not in proc.stderr, proc.stderr


def test_cli_check_only_exits_18_on_damage(tmp_path: Path) -> None:
    cfg = config_with_check_schedule(tmp_path)
    cli = AmberCli(tmp_path / "main", tmp_path)
    config = str(tmp_path / "config.toml")
    cli.run("--config", config, "run", "--no-check", "home")
    ok = cli.run("--config", config, "run", "--check-only", "home")
    assert "check:home: success" in ok.stdout
    pack = max((tmp_path / "main" / "data").rglob("*"), key=lambda p: p.stat().st_size if p.is_file() else 0)
    raw = bytearray(pack.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    pack.write_bytes(bytes(raw))
    bad = cli.run("--config", config, "run", "--check-only", "home", check=False)
    assert bad.returncode == 18, bad.stderr
    assert "check:home: failed" in bad.stdout
    assert len(StateDB(cfg.state.path).runs("check:home")) == 2
