"""Scheduled runs yield to the people using the machine; a backup typed by hand does not."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from amber.ops.config.model import parse_config
from amber.ops.schedule import units
from amber.ops.state import StateDB
from tests.conftest import AmberCli
from tests.ops.test_run import make_config

BASE = """
[repositories.main]
url = "/srv/amber"

[jobs.home]
paths = ["/home"]
schedule = "daily"
"""


def _service(limits: str) -> dict[str, list[str]]:
    cfg = parse_config(BASE + limits, "/etc/amber/config.toml")
    made = {u.name: units.parse_unit(u.text) for u in units.units_for(cfg, cfg.source, ["amber"])}
    return made["amber-home.service"]["Service"]


@pytest.mark.parametrize(("limits", "nice", "io_class", "weight"), [
    ("", "19", "idle", "5"),  # nothing said: low priority
    ("[limits]\nnice = 0\n", "0", "idle", None),  # the config's word wins, field by field
    ("[limits]\nionice_class = \"best-effort\"\n", "19", "best-effort", "5"),
    ("[limits]\nnice = 5\nionice_class = \"realtime\"\n", "5", "realtime", "75"),
])  # fmt: skip
def test_units_default_to_low_priority(limits: str, nice: str, io_class: str, weight: str | None) -> None:
    service = _service(limits)
    assert service["Nice"] == [nice] and service["IOSchedulingClass"] == [io_class]
    assert service.get("CPUWeight") == ([weight] if weight else None)


def _probe_hook(out: Path) -> str:
    probe = f"cut -d' ' -f19 /proc/self/stat > {out}"
    if shutil.which("ionice"):
        probe += f"; ionice -p $$ >> {out}"
    return f'hooks = {{ before = ["{probe}"] }}'


def test_daemon_runs_jobs_at_low_priority(tmp_path: Path) -> None:
    out = tmp_path / "prio"
    path = make_config(tmp_path, _probe_hook(out) + '\nschedule = "*-*-* 02:00:00"')
    cfg = parse_config(path.read_text(), str(path))
    StateDB(cfg.state.path).set_stamp("run:home", dt.datetime(2020, 1, 1).timestamp())  # due: catch up
    proc = subprocess.run([sys.executable, "-m", "amber", "--config", str(path), "daemon", "--once"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "home: success" in proc.stdout
    lines = out.read_text().split("\n")
    assert lines[0] == "19"
    if shutil.which("ionice"):
        assert lines[1] == "idle"


def test_backup_by_hand_keeps_full_speed(cli: AmberCli, tmp_path: Path) -> None:
    cli.run("backup", "--stdin-from-command", "--stdin-filename", "prio.txt", "--",
            "sh", "-c", "cut -d' ' -f19 /proc/self/stat")  # fmt: skip
    cli.run("restore", "latest", "--target", str(tmp_path / "out"))
    assert (tmp_path / "out" / "prio.txt").read_text().strip() == str(os.getpriority(os.PRIO_PROCESS, 0))
