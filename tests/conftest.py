"""Shared fixtures: real repositories on real filesystems, and the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from amber.repository import Repository, init_repository, open_repository
from amber.storage import open_backend

pytest_plugins = ["tests.btrfs_fs"]  # the `btrfs` fixture: a real Btrfs filesystem on a loop device

PASSWORD = "correct horse battery staple"

# Cheap key derivation for the thousands of repositories the suite opens; the
# default cost is exercised by tests/services/test_session.py.
os.environ.setdefault("AMBER_KDF", "t=1,m=8192,p=1")


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str
    stdout_bytes: bytes


class AmberCli:
    """Runs ``python -m amber`` as a subprocess against one repository."""

    def __init__(self, repo: Path, tmp: Path) -> None:
        self.repo = repo
        self.env = {
            **os.environ,
            "AMBER_REPOSITORY": str(repo),
            "AMBER_PASSWORD": PASSWORD,
            "XDG_DATA_HOME": str(tmp / "xdg-data"),
            "XDG_CACHE_HOME": str(tmp / "xdg-cache"),
            "XDG_STATE_HOME": str(tmp / "xdg-state"),  # state DB and audit log
            "XDG_CONFIG_HOME": str(tmp / "xdg-config"),  # never the developer's config
        }

    def run(self, *args: str, input: bytes | None = None, env: dict[str, str] | None = None,
            check: bool = True, timeout: float = 300) -> CliResult:  # fmt: skip
        proc = subprocess.run(
            [sys.executable, "-m", "amber", *args],
            input=input,
            capture_output=True,
            env={**self.env, **(env or {})},
            timeout=timeout,
        )
        result = CliResult(
            proc.returncode, proc.stdout.decode(errors="replace"),
            proc.stderr.decode(errors="replace"), proc.stdout,
        )  # fmt: skip
        if check and proc.returncode != 0:
            raise AssertionError(
                f"amber {' '.join(args)} exited {proc.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def popen(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "amber", *args],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip


@pytest.fixture
def repo_path(tmp_path: Path) -> Path:
    return tmp_path / "repo"


@pytest.fixture
def cli(tmp_path: Path, repo_path: Path) -> AmberCli:
    """A CLI runner with an initialized repository."""
    runner = AmberCli(repo_path, tmp_path)
    runner.run("init")
    return runner


@pytest.fixture
def repo(repo_path: Path) -> Iterator[Repository]:
    """An initialized, opened repository (in-process)."""
    r = init_repository(open_backend(str(repo_path)), PASSWORD.encode())
    r.close()
    opened = open_repository(open_backend(str(repo_path)), PASSWORD.encode())
    yield opened
    opened.close()


def is_root() -> bool:
    return os.geteuid() == 0


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """In-process backups record the snapshots they write under $XDG_CACHE_HOME: never the developer's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        yield
