"""systemd units: generated text, systemd-analyze verify, install/status/remove through the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from amber.ops.config.model import parse_config
from amber.ops.schedule import units
from tests.conftest import AmberCli

CONFIG = """
[repositories.main]
url = "/srv/amber"
password_file = "/etc/amber.pass"

[jobs.home]
paths = ["/home"]
schedule = "Mon..Fri *-*-* 02:30:00"

[jobs."odd name%"]
paths = ["/srv"]
schedule = "daily"

[jobs.manual]
paths = ["/opt"]

[limits]
nice = 10
ionice_class = "best-effort"
ionice_level = 6
cpu_quota_percent = 50
memory_max = "512M"
"""


def generated(config_path: str = "/etc/amber/config.toml") -> dict[str, dict[str, dict[str, list[str]]]]:
    cfg = parse_config(CONFIG, config_path)
    made = units.units_for(cfg, config_path, [sys.executable, "-m", "amber"])
    return {u.name: units.parse_unit(u.text) for u in made}


def test_units_carry_schedule_and_limits() -> None:
    made = generated()
    assert sorted(made) == ["amber-home.service", "amber-home.timer", "amber-odd\\x20name\\x25.service",
                            "amber-odd\\x20name\\x25.timer"]  # fmt: skip
    timer = made["amber-home.timer"]["Timer"]
    assert timer == {"OnCalendar": ["Mon..Fri *-*-* 02:30:00"], "Persistent": ["true"],
                     "Unit": ["amber-home.service"]}  # fmt: skip
    service = made["amber-home.service"]["Service"]
    assert service["ExecStart"] == [f"{sys.executable} -m amber --config /etc/amber/config.toml run home"]
    assert service["Nice"] == ["10"] and service["IOSchedulingClass"] == ["best-effort"]
    assert service["IOSchedulingPriority"] == ["6"] and service["CPUQuota"] == ["50%"]
    assert service["CPUWeight"] == ["50"] and service["MemoryMax"] == [str(512 << 20)]
    assert service["TimeoutStopSec"] == ["5min"]  # room to stop at a safe point on SIGTERM
    odd = made["amber-odd\\x20name\\x25.service"]["Service"]["ExecStart"][0]
    assert odd.endswith('run "odd name%%"')


QUOTES = [("plain", "plain"), ("a b", '"a b"'), ("50%", "50%%"), ("$HOME", "$$HOME"),
          ('say "hi"', '"say \\"hi\\""')]


@pytest.mark.parametrize(("arg", "quoted"), QUOTES)
def test_quote_arg(arg: str, quoted: str) -> None:
    assert units.quote_arg(arg) == quoted


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_accepts_units(tmp_path: Path) -> None:
    cfg = parse_config(CONFIG, str(tmp_path / "config.toml"))
    paths = []
    for unit in units.units_for(cfg, str(tmp_path / "config.toml"), [sys.executable, "-m", "amber"]):
        (tmp_path / unit.name).write_text(unit.text)
        paths.append(str(tmp_path / unit.name))
    proc = subprocess.run(["systemd-analyze", "verify", *paths], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "amber-" not in proc.stderr, proc.stderr  # no warnings about our units


def test_install_status_remove(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(CONFIG + f'\n[state]\npath = "{tmp_path / "state.db"}"\n')
    unit_dir = tmp_path / "units"
    unit_dir.mkdir()
    (unit_dir / "amber-foreign.service").write_text("[Service]\nExecStart=/bin/true\n")  # not ours: kept
    cli = AmberCli(tmp_path / "repo", tmp_path)
    dry = cli.run("--config", str(cfg), "schedule", "install", "--dry-run", "--unit-dir", str(unit_dir))
    assert "OnCalendar=Mon..Fri *-*-* 02:30:00" in dry.stdout
    assert sorted(p.name for p in unit_dir.iterdir()) == ["amber-foreign.service"]
    cli.run("--config", str(cfg), "schedule", "install", "--unit-dir", str(unit_dir))
    assert len(list(unit_dir.glob("amber-*"))) == 5
    status = cli.run("--config", str(cfg), "schedule", "status", "--unit-dir", str(unit_dir)).stdout
    assert "amber-home.timer: job home, Mon..Fri *-*-* 02:30:00, next " in status and "last never" in status
    assert "job odd name%," in status
    # the job loses its schedule: re-install drops its units
    cfg.write_text(cfg.read_text().replace('schedule = "daily"\n', ""))
    out = cli.run("--config", str(cfg), "schedule", "install", "--unit-dir", str(unit_dir)).stdout
    assert "removed" in out and not list(unit_dir.glob("amber-odd*"))
    cli.run("--config", str(cfg), "schedule", "remove", "--unit-dir", str(unit_dir))
    assert sorted(p.name for p in unit_dir.iterdir()) == ["amber-foreign.service"]


def test_install_without_schedules_is_an_error(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    text = CONFIG.replace('schedule = "Mon..Fri *-*-* 02:30:00"\n', "")
    cfg.write_text(text.replace('schedule = "daily"\n', ""))
    result = AmberCli(tmp_path / "r", tmp_path).run("--config", str(cfg), "schedule", "install", "--unit-dir",
                                                   str(tmp_path / "u"), check=False)  # fmt: skip
    assert result.returncode == 2 and "no job has a schedule" in result.stderr


def _fake_systemctl(tmp_path: Path, fail_on: str) -> tuple[dict[str, str], Path]:
    """A `systemctl` first on PATH that logs its arguments and fails on ``fail_on`` (no user bus here)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "systemctl.log"
    script = bindir / "systemctl"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> "{log}"\n'
        f'case "$*" in *"{fail_on}"*) echo "Failed to connect to bus: No medium found" >&2; exit 1;; esac\n'
        'case "$*" in *is-active*) echo active;; esac\n'
    )
    script.chmod(0o755)
    return {"PATH": f"{bindir}:{os.environ['PATH']}"}, log


def test_user_units_are_the_default_everywhere(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(CONFIG + f'\n[state]\npath = "{tmp_path / "state.db"}"\n')
    cli = AmberCli(tmp_path / "repo", tmp_path)
    env, log = _fake_systemctl(tmp_path, fail_on="never-fails")
    user_dir = tmp_path / "xdg-config" / "systemd" / "user"
    dry = cli.run("--config", str(cfg), "schedule", "install", "--dry-run", env=env).stdout
    assert f"# {user_dir}/amber-home.timer" in dry and "/etc/systemd" not in dry
    cli.run("--config", str(cfg), "schedule", "install", env=env)
    assert (user_dir / "amber-home.timer").exists()
    status = cli.run("--config", str(cfg), "schedule", "status", env=env).stdout
    assert "amber-home.timer: job home" in status and status.rstrip().endswith("active")
    removed = cli.run("--config", str(cfg), "schedule", "remove", env=env).stdout
    assert f"removed {user_dir}/amber-home.timer" in removed and not list(user_dir.glob("amber-*"))
    calls = log.read_text().splitlines()
    assert calls and all(c.startswith("--user ") for c in calls), calls


@pytest.mark.parametrize("fail_on", ["daemon-reload", "enable --now amber-home.timer"])
def test_install_fails_when_systemctl_cannot_enable(tmp_path: Path, fail_on: str) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(CONFIG)
    env, _log = _fake_systemctl(tmp_path, fail_on=fail_on)
    result = AmberCli(tmp_path / "repo", tmp_path).run("--config", str(cfg), "schedule", "install", env=env,
                                                       check=False)  # fmt: skip
    assert result.returncode == 37, result.stderr
    assert "wrote " in result.stdout and "amber-home.service" in result.stdout
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("amber: units written to ") and "but not enabled: amber-home.timer" in error
    assert "No medium found" in result.stderr
    if fail_on.startswith("enable"):  # the other timer was enabled
        assert "amber-odd" not in error.partition("not enabled:")[2]


REPORTS = """
[[notify]]
url = "mailto://mail.example.com?to=ops@example.com"
events = ["summary"]

[reports.weekly]
schedule = "Mon *-*-* 07:00"
"""


def test_report_units_send_each_scheduled_period(tmp_path: Path) -> None:
    cfg = parse_config(CONFIG + REPORTS, str(tmp_path / "config.toml"))
    amber = [sys.executable, "-m", "amber"]
    made = {u.name: u for u in units.units_for(cfg, "/etc/amber/config.toml", amber)}
    timer = units.parse_unit(made["amber-report-weekly.timer"].text)["Timer"]
    assert timer == {"OnCalendar": ["Mon *-*-* 07:00"], "Persistent": ["true"],
                     "Unit": ["amber-report-weekly.service"]}  # fmt: skip
    service = units.parse_unit(made["amber-report-weekly.service"].text)["Service"]
    exec_start = f"{sys.executable} -m amber --config /etc/amber/config.toml report weekly --scheduled"
    assert service["ExecStart"] == [exec_start]
    for name in ("amber-report-weekly.service", "amber-report-weekly.timer"):
        (tmp_path / name).write_text(made[name].text)
    if shutil.which("systemd-analyze"):
        proc = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "amber-report-weekly.timer"),
                               str(tmp_path / "amber-report-weekly.service")],
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert "amber-report" not in proc.stderr, proc.stderr
WATCHED = CONFIG + """
[jobs.live]
paths = ["/var/lib/app"]
watch = true
"""


def test_a_watched_job_gets_a_long_running_service(tmp_path: Path) -> None:
    cfg = parse_config(WATCHED, str(tmp_path / "config.toml"))
    made = {u.name: u for u in units.units_for(cfg, str(tmp_path / "config.toml"), [sys.executable])}
    assert "amber-watch-live.service" in made and "amber-watch-live.timer" not in made
    parsed = units.parse_unit(made["amber-watch-live.service"].text)
    service = parsed["Service"]
    assert service["ExecStart"] == [f"{sys.executable} --config {tmp_path / 'config.toml'} watch live"]
    assert service["Type"] == ["simple"] and service["Restart"] == ["on-failure"]
    assert service["SuccessExitStatus"] == ["143"] and service["Nice"] == ["10"]
    assert parsed["Install"]["WantedBy"] == ["default.target"]
    if shutil.which("systemd-analyze") is not None:
        (tmp_path / "amber-watch-live.service").write_text(made["amber-watch-live.service"].text)
        proc = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "amber-watch-live.service")],
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert "amber-" not in proc.stderr, proc.stderr


def test_install_enables_the_watch_service(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(WATCHED + f'\n[state]\npath = "{tmp_path / "state.db"}"\n')
    env, log = _fake_systemctl(tmp_path, "never-fails")
    cli = AmberCli(tmp_path / "repo", tmp_path)
    cli.run("--config", str(cfg), "schedule", "install", env=env)
    assert "enable --now amber-watch-live.service" in log.read_text()
