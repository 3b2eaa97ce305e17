"""Metrics from the state database and real repositories; textfile and HTTP /metrics scraped for real."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from amber.ops import metrics
from amber.ops.config.model import parse_config
from amber.ops.drills.history import DrillHistory, DrillRow
from amber.ops.state import Destination, StateDB
from amber.repository import Repository
from amber.services.backup import BackupRequest, backup_paths
from tests.conftest import AmberCli
from tests.receivers import free_port


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def config_for(tmp_path: Path, listen: str = "") -> str:
    return f"""
[repositories.main]
url = "{tmp_path / 'repo'}"
password_env = "AMBER_PASSWORD"
[repositories.usb]
url = "{tmp_path / 'usb'}"
password_env = "AMBER_PASSWORD"
[jobs.home]
paths = ["{tmp_path}"]
repository = "main"
mirrors = ["usb"]
[metrics]
listen = "{listen or '127.0.0.1:0'}"
[state]
path = "{tmp_path / 'state.db'}"
"""


def add_run(db: StateDB, status: str, added: int, usb_status: str) -> None:
    run = db.begin("home")
    run.status, run.bytes_added = status, added
    run.destinations = [Destination("main", "backup", "success" if status != "failed" else "failed"),
                        Destination("usb", "copy", usb_status)]  # fmt: skip
    run.ended = run.started + 12.5
    db.finish(run)


def drill_row(repository: str, status: str, started: float) -> DrillRow:
    return DrillRow(started, started + 2, repository, "home", "sample", status, ["ab"], 20, 1000, 2.0, 500.0,
                    3600.0, 1, None, [])  # fmt: skip


def test_job_destination_and_drill_metrics(tmp_path: Path) -> None:
    cfg = parse_config(config_for(tmp_path), "t.toml")
    db = StateDB(cfg.state.path)
    add_run(db, "success", 100, "failed")
    add_run(db, "failed", 0, "skipped")
    add_run(db, "success", 4242, "success")
    history = DrillHistory(cfg.state.path)
    for i, status in enumerate(["success", "integrity", "success", "success"]):
        history.add(drill_row("main", status, 1000.0 + i))
    got = samples(metrics.exposition(metrics.build(cfg, cfg.state.path)).decode())

    def value(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    assert value("amber_job_runs", job="home", status="success") == 2
    assert value("amber_job_runs", job="home", status="failed") == 1
    assert value("amber_job_last_bytes_added", job="home") == 4242
    assert value("amber_job_last_run_duration_seconds", job="home") == pytest.approx(12.5)
    assert value("amber_job_last_run_success", job="home") == 1
    assert abs(value("amber_job_last_success_timestamp_seconds", job="home") - time.time()) < 600
    assert value("amber_destination_errors", repository="usb") == 1
    assert value("amber_destination_errors", repository="main") == 1
    assert ("amber_destination_last_success_timestamp_seconds", (("repository", "usb"),)) in got
    assert value("amber_drill_success_ratio", repository="main") == 0.75
    assert value("amber_drills_total", repository="main") == 4
    assert value("amber_drill_last_success", repository="main") == 1
    assert value("amber_drill_throughput_bytes_per_second", repository="main") == 500
    assert value("amber_drill_estimated_full_restore_seconds", repository="main") == 3600
    assert 0 < value("amber_destination_used_ratio", repository="main") <= 1


def test_repository_size_and_dedup_ratio(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(bytes(range(256)) * 4000)
    backup_paths(repo, BackupRequest(paths=[str(src)]))
    backup_paths(repo, BackupRequest(paths=[str(src)], force=True))
    stats = metrics.repository_stats(repo, "main")
    packs = [p for p in (tmp_path / "repo" / "data").rglob("*") if p.is_file()]
    assert stats.stored_bytes == sum(p.stat().st_size for p in packs) and stats.packs == len(packs)
    assert stats.snapshots == 2 and stats.logical_bytes == 2 * 256 * 4000
    assert stats.dedup_ratio > 1.5  # the second snapshot stored nothing new
    got = samples(metrics.exposition(metrics.build(None, str(tmp_path / "s.db"), [stats])).decode())
    assert got[("amber_repository_size_bytes", (("repository", "main"),))] == stats.stored_bytes
    ratio = got[("amber_repository_dedup_ratio", (("repository", "main"),))]
    assert ratio == pytest.approx(stats.dedup_ratio)


def test_textfile_is_replaced_atomically(tmp_path: Path) -> None:
    path = tmp_path / "collector" / "amber.prom"
    metrics.write_textfile(str(path), b"a 1\n")
    metrics.write_textfile(str(path), b"a 2\n")
    assert path.read_bytes() == b"a 2\n"
    assert [p.name for p in path.parent.iterdir()] == ["amber.prom"]  # no temp file left


def test_daemon_extension_serves_http_metrics(tmp_path: Path) -> None:
    port = free_port()
    cfg = parse_config(config_for(tmp_path, f"127.0.0.1:{port}"), "t.toml")
    DrillHistory(cfg.state.path).add(drill_row("usb", "success", time.time()))
    ext = metrics.MetricsExtension()
    ext.start(cfg)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            text = response.read().decode()
        DrillHistory(cfg.state.path).add(drill_row("usb", "integrity", time.time()))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            second = response.read().decode()
    finally:
        ext.stop()
    assert samples(text)[("amber_drill_success_ratio", (("repository", "usb"),))] == 1.0
    assert samples(second)[("amber_drill_success_ratio", (("repository", "usb"),))] == 0.5  # fresh per scrape


def test_metrics_cli_writes_textfile(cli: AmberCli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"x" * 5000)
    cli.run("backup", str(src))
    cli.run("drill", "--files", "1")
    out = tmp_path / "textfile" / "amber.prom"
    assert "wrote" in cli.run("metrics", "--textfile", str(out)).stdout
    got = samples(out.read_text())
    repo = (("repository", str(cli.repo)),)
    assert got[("amber_repository_snapshots", repo)] == 1
    assert got[("amber_repository_size_bytes", repo)] > 0
    assert got[("amber_drill_success_ratio", repo)] == 1.0


def test_amber_daemon_serves_metrics(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    port = free_port()
    path = tmp_path / "amber.toml"
    path.write_text(config_for(tmp_path, f"127.0.0.1:{port}"))
    env = {**os.environ, "AMBER_PASSWORD": "x", "XDG_STATE_HOME": str(tmp_path / "xdg")}
    proc = subprocess.Popen([sys.executable, "-m", "amber", "--config", str(path), "daemon", "--tick", "0.2"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                    text = response.read().decode()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert "amber_metrics_generated_timestamp_seconds" in text
    assert 'amber_destination_used_ratio{repository="main"}' in text
