"""Command lines for the benchmarked backup tools (amber, restic, borg)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

PASSWORD = "amber-bench-password"
APT_PACKAGES = ("restic", "borgbackup", "time")


def amber_command() -> list[str]:
    """Prefer the ``amber`` console script next to this interpreter."""
    beside = Path(sys.executable).parent / "amber"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("amber")
    return [found] if found else [sys.executable, "-m", "amber"]


@dataclass
class Tool:
    """One backup tool, with its repository and private state under ``workdir``."""

    name: str
    workdir: Path
    exe: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.exe:
            self.exe = amber_command() if self.name == "amber" else [self.name]

    @property
    def repo(self) -> Path:
        return self.workdir / "repos" / self.name

    @property
    def state(self) -> Path:
        return self.workdir / "state" / self.name

    def env(self) -> dict[str, str]:
        prefixes = ("AMBER_", "RESTIC_", "BORG_", "RCLONE_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
        env.update(
            HOME=str(self.state / "home"),
            XDG_CACHE_HOME=str(self.state / "cache"),
            XDG_CONFIG_HOME=str(self.state / "config"),
            RESTIC_PASSWORD=PASSWORD,
            RESTIC_CACHE_DIR=str(self.state / "cache" / "restic"),
            BORG_PASSPHRASE=PASSWORD,
            BORG_BASE_DIR=str(self.state),
            AMBER_PASSWORD=PASSWORD,
        )
        return env

    def reset(self) -> None:
        """Remove repository and cache so the tool starts from scratch."""
        for path in (self.repo, self.state):
            shutil.rmtree(path, ignore_errors=True)
        self.repo.parent.mkdir(parents=True, exist_ok=True)
        (self.state / "home").mkdir(parents=True, exist_ok=True)

    def init_cmd(self) -> list[str]:
        if self.name == "borg":
            return [*self.exe, "init", "-e", "repokey-blake2", str(self.repo)]
        return [*self.exe, "-r", str(self.repo), "init"]

    def backup_cmd(self, data: Path, n: int) -> list[str]:
        if self.name == "borg":
            archive = f"{self.repo}::bench-{n}"
            return [*self.exe, "create", "--compression", "zstd,3", archive, str(data)]
        return [*self.exe, "-r", str(self.repo), "backup", str(data)]

    def restore_cmd(self, target: Path, n: int) -> tuple[list[str], Path | None]:
        """Command restoring snapshot ``n`` (the latest) into ``target`` and its cwd."""
        if self.name == "borg":
            return [*self.exe, "extract", f"{self.repo}::bench-{n}"], target
        return [*self.exe, "-r", str(self.repo), "restore", "latest", "--target", str(target)], None

    def version(self) -> str:
        args = ["version"] if self.name == "restic" else ["--version"]
        try:
            out = subprocess.run(
                [*self.exe, *args], capture_output=True, text=True, timeout=60, env=self.env()
            )
        except OSError as exc:
            return f"unavailable ({exc})"
        text = (out.stdout or out.stderr).strip().splitlines()
        return text[0] if text and out.returncode == 0 else f"unknown (exit {out.returncode})"


def ensure_installed(names: list[str]) -> list[str]:
    """apt-get install restic/borg/time if missing and we are root. Returns notes."""
    notes: list[str] = []
    wanted = {"restic": "restic", "borg": "borgbackup"}
    missing = [wanted[n] for n in names if n in wanted and shutil.which(n) is None]
    if not Path("/usr/bin/time").exists():
        missing.append("time")
    if not missing:
        return notes
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        notes.append(f"missing {missing}; not root or no apt-get, not installing")
        return notes
    cmd = ["apt-get", "install", "-y", *missing]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, env=env).returncode
    notes.append(f"{' '.join(cmd)} -> exit {rc}")
    return notes
