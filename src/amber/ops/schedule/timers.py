"""`amber schedule`: install, inspect and remove the systemd units of scheduled jobs."""

from __future__ import annotations

import datetime as dt
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

from amber.errors import UsageError, from_os_error
from amber.ops.config.model import Config
from amber.ops.schedule import units
from amber.ops.schedule.calendar import next_after, parse_calendar
from amber.ops.state import StateDB


def unit_dir(system: bool) -> str:
    if system:
        return "/etc/systemd/system"
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return os.path.join(base, "systemd", "user")


def amber_command() -> list[str]:
    """How the units start amber: this interpreter, so a virtualenv keeps working."""
    return [sys.executable, "-m", "amber"]


def _systemctl(system: bool, *args: str) -> subprocess.CompletedProcess[str] | None:
    exe = shutil.which("systemctl")
    if exe is None:
        return None
    scope = [] if system else ["--user"]
    try:
        return subprocess.run([exe, *scope, *args], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None


@dataclass
class InstallResult:
    directory: str
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    units: list[units.UnitFile] = field(default_factory=list)
    systemctl: list[str] = field(default_factory=list)  # messages from enabling timers
    not_enabled: list[str] = field(default_factory=list)  # timers written but not enabled


def _ours(directory: str) -> list[str]:
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise from_os_error(exc, directory) from exc
    found = []
    for name in names:
        if name.startswith("amber-") and name.endswith((".service", ".timer")):
            try:
                with open(os.path.join(directory, name), encoding="utf-8") as f:
                    if f.readline().rstrip("\n") == units.MARKER:
                        found.append(name)
            except (OSError, UnicodeDecodeError):
                continue
    return found


def _write(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise from_os_error(exc, path) from exc


def install(
    config: Config, system: bool = False, dry_run: bool = False, directory: str | None = None,
    enable: bool = True,
) -> InstallResult:  # fmt: skip
    """Write units for every scheduled job, drop our units of unscheduled jobs, enable the timers."""
    directory = directory or unit_dir(system)
    config_path = os.path.abspath(config.source)
    wanted = units.units_for(config, config_path, amber_command())
    if not wanted:
        raise UsageError(f"{config.source}: no job has a schedule or watch = true")
    result = InstallResult(directory, units=wanted)
    stale = [n for n in _ours(directory) if n not in {u.name for u in wanted}]
    if dry_run:
        result.removed = stale
        return result
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise from_os_error(exc, directory) from exc
    for unit in wanted:
        _write(os.path.join(directory, unit.name), unit.text)
        result.written.append(unit.name)
    for name in stale:
        _remove_unit(system, directory, name, enable, result.systemctl)
        result.removed.append(name)
    if enable:
        timers = [u.name for u in wanted if u.name.endswith(".timer") or u.name.startswith("amber-watch-")]
        result.not_enabled = _enable(system, timers, result.systemctl)
    return result


def _enable(system: bool, timers: list[str], messages: list[str]) -> list[str]:
    """Reload systemd and enable ``timers``; returns the timers that are not enabled."""
    reload = _systemctl(system, "daemon-reload")
    if reload is None:
        messages.append("systemctl not found or did not answer")
        return list(timers)
    if reload.returncode != 0:
        messages.append(f"systemctl daemon-reload failed: {_why(reload)}")
        return list(timers)
    failed = []
    for timer in timers:
        done = _systemctl(system, "enable", "--now", timer)
        if done is None or done.returncode != 0:
            failed.append(timer)
            messages.append(f"systemctl enable --now {timer} failed: {_why(done)}")
    return failed


def _why(proc: subprocess.CompletedProcess[str] | None) -> str:
    if proc is None:
        return "no answer"
    return proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit status {proc.returncode}"


def _remove_unit(system: bool, directory: str, name: str, use_systemctl: bool, messages: list[str]) -> None:
    if use_systemctl and name.endswith(".timer"):
        _systemctl(system, "disable", "--now", name)
    try:
        os.remove(os.path.join(directory, name))
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise from_os_error(exc, os.path.join(directory, name)) from exc


def remove(system: bool = False, directory: str | None = None, use_systemctl: bool = True) -> InstallResult:
    directory = directory or unit_dir(system)
    result = InstallResult(directory)
    for name in _ours(directory):
        _remove_unit(system, directory, name, use_systemctl, result.systemctl)
        result.removed.append(name)
    if result.removed and use_systemctl:
        _systemctl(system, "daemon-reload")
    return result


@dataclass
class TimerStatus:
    unit: str
    job: str
    schedule: str
    next_run: dt.datetime | None
    last_status: str  # success | partial | failed | never
    last_started: dt.datetime | None
    active: str  # from systemctl is-active, or "unknown"


def status(config: Config | None, system: bool = False, directory: str | None = None,
           use_systemctl: bool = True) -> list[TimerStatus]:  # fmt: skip
    """Our installed timers, read from the unit files (and systemctl, when there is one)."""
    directory = directory or unit_dir(system)
    db = StateDB(config.state.path) if config is not None else None
    now = dt.datetime.now()
    out = []
    for name in _ours(directory):
        if not name.endswith(".timer"):
            continue
        with open(os.path.join(directory, name), encoding="utf-8") as f:
            parsed = units.parse_unit(f.read())
        schedule = parsed.get("Timer", {}).get("OnCalendar", [""])[0]
        service = parsed.get("Timer", {}).get("Unit", [name.replace(".timer", ".service")])[0]
        job = _job_of(directory, service)
        try:
            upcoming = next_after(parse_calendar(schedule), now)
        except ValueError:
            upcoming = None
        last = db.last(job) if db is not None and job else None
        active = "unknown"
        if use_systemctl:
            probe = _systemctl(system, "is-active", name)
            active = probe.stdout.strip() or "unknown" if probe is not None else "unknown"
        out.append(TimerStatus(
            name, job, schedule, upcoming, last.status if last else "never",
            dt.datetime.fromtimestamp(last.started) if last else None, active,
        ))  # fmt: skip
    return out


def _job_of(directory: str, service: str) -> str:
    """The job a service runs: the argument after ``run`` in its ExecStart."""
    try:
        with open(os.path.join(directory, service), encoding="utf-8") as f:
            exec_start = units.parse_unit(f.read()).get("Service", {}).get("ExecStart", [""])[0]
    except OSError:
        return ""
    try:
        argv = shlex.split(exec_start.replace("%%", "%").replace("$$", "$"))
    except ValueError:
        return ""
    if "run" not in argv:
        return ""
    names = [a for a in argv[argv.index("run") + 1 :] if not a.startswith("-")]
    return names[0] if names else ""
