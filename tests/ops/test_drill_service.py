"""The drill service: scheduled drills from the daemon, per-job repositories, history rows."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from amber.ops.config.model import parse_config
from amber.ops.drills.drill import DrillExtension
from amber.ops.drills.history import DrillHistory
from amber.ops.state import StateDB
from amber.repository import Repository
from amber.services.backup import BackupRequest, backup_paths
from amber.services.session import PasswordSource
from tests.conftest import PASSWORD


def test_daemon_runs_due_drills_once(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMBER_PASSWORD", PASSWORD)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(5):
        (src / f"f{i}").write_bytes(bytes([i]) * (1000 + i))
    backup_paths(repo, BackupRequest(paths=[str(src)]))
    cfg = parse_config(f"""
[repositories.main]
url = "{tmp_path / 'repo'}"
password_env = "AMBER_PASSWORD"
[repositories.gone]
url = "{tmp_path / 'unplugged'}"
password_env = "AMBER_PASSWORD"
offline = true
[jobs.home]
paths = ["{src}"]
repository = "main"
mirrors = ["gone"]
drill = {{ schedule = "hourly", files = 3 }}
[state]
path = "{tmp_path / 'state.db'}"
""", "t.toml")
    ext = DrillExtension(PasswordSource())
    ext.tick(cfg)  # first sight: only stamps
    history = DrillHistory(cfg.state.path)
    assert history.recent() == []
    StateDB(cfg.state.path).set_stamp("drill:home", time.time() - 2 * 3600)
    ext.tick(cfg)
    ext.tick(cfg)  # not due again
    rows = history.recent()
    assert [(r.repository, r.job, r.status, r.files) for r in rows] == [("main", "home", "success", 3)]
    assert rows[0].estimated_full_seconds > 0 and rows[0].throughput > 0
