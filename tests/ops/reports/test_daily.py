"""The daily report over a real state database: counts, checks, copies, missed jobs, masked errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from amber.ops.reports import daily
from amber.ops.state import Destination, RunRecord, StateDB
from tests.ops.test_run import load, make_config

SECRET = "s3cr3t-pw"


def _config(tmp_path: Path) -> Path:
    path = make_config(tmp_path, 'schedule = "hourly"')
    text = path.read_text() + f"""
[jobs.docs]
paths = ["{tmp_path / 'src'}"]
repository = "main"
schedule = "daily"

[jobs.archive]
paths = ["{tmp_path / 'src'}"]
repository = "main"
schedule = "monthly"
"""
    path.write_text(text)
    return path


def _fill(db: StateDB, now: float) -> None:
    check = Destination("main", "check", "failed", "damage", details={"errors": ["pack x", "pack y"]})
    copy = Destination("mirror", "copy", "success", snapshot_id="abc")
    db.add(RunRecord("home", now - 3600, now - 3500, "success", 10, 2, ["s1"], [copy]))
    db.add(RunRecord("home", now - 1800, now - 1700, "partial", 5, 1, ["s2"], [check]))
    db.add(RunRecord("home", now - 3 * 86400, now - 3 * 86400 + 5, "failed"))  # outside the window
    db.add(RunRecord("archive", now - 600, now - 500, "failed",
                     errors=[f"cannot reach rest:https://bob:{SECRET}@h/r"]))  # fmt: skip


def test_daily_report_counts_and_details(tmp_path: Path) -> None:
    cfg = load(_config(tmp_path))
    now = time.time()
    _fill(StateDB(cfg.state.path), now)
    report = daily.daily(cfg, now)
    by_job = {j.job: j for j in report.jobs}
    assert [r.status for r in by_job["home"].runs] == ["success", "partial"]
    assert by_job["home"].outcome == "partial"
    assert by_job["home"].checks == [{"repository": "main", "status": "failed", "errors": 2}]
    assert by_job["home"].copies == [{"repository": "mirror", "status": "success", "snapshot": "abc"}]
    assert by_job["docs"].missed and by_job["docs"].outcome == "missed"  # daily, yet no run
    assert by_job["archive"].outcome == "failed" and not by_job["archive"].missed
    assert daily.subject(report) == "0 ok, 1 partial, 1 failed, 1 missed"
    text = daily.render_text(report)
    assert text.splitlines()[0] == "amber daily report: 0 ok, 1 partial, 1 failed, 1 missed; 3 unprotected"
    assert re.search(r"home +main +failed +2", text) and re.search(r"home +mirror +success +abc", text)
    assert "docs: no run in the last 24 hours although scheduled" in text
    assert SECRET not in text and SECRET not in daily.render_json(report)


def test_cli_report_daily_json(tmp_path: Path) -> None:
    path = _config(tmp_path)
    cfg = load(path)
    _fill(StateDB(cfg.state.path), time.time())
    out = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "amber", "--config", str(path), "report", "daily", "--format", "json"]
    proc = subprocess.run([*cmd, "--output", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    body = json.loads(out.read_text())
    assert body["counts"] == {"ok": 0, "partial": 1, "failed": 1, "missed": 1}
    assert [j["job"] for j in body["jobs"]] == ["home", "docs", "archive"]
    assert (out.stat().st_mode & 0o777) == 0o600


def test_cli_report_daily_html_file(tmp_path: Path) -> None:
    path = _config(tmp_path)
    _fill(StateDB(load(path).state.path), time.time())
    out = tmp_path / "report.html"
    cmd = [sys.executable, "-m", "amber", "--config", str(path), "report", "daily", "--format", "html"]
    proc = subprocess.run([*cmd, "--output", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "0 ok, 1 partial, 1 failed, 1 missed" in page
    assert "<svg" in page and "Protection now" in page and SECRET not in page
    assert (out.stat().st_mode & 0o777) == 0o600


# A run's error can quote names from the backed-up machine: here the extension that files were
# renamed to (anomaly reasons), with a terminal escape and a byte that is not UTF-8.
HOSTILE_ERROR = "snapshot 1a2b3c4d tagged suspicious: 900 files renamed, 900 of them to *" + os.fsdecode(
    b".\x1b]0;owned\x07\x1b[2J\xff"
)


def test_cli_report_daily_text_and_html_escape_what_names_hold(tmp_path: Path) -> None:
    path = _config(tmp_path)
    now = time.time()
    StateDB(load(path).state.path).add(
        RunRecord("home", now - 60, now - 50, "failed", errors=[HOSTILE_ERROR])
    )
    cmd = [sys.executable, "-m", "amber", "--config", str(path), "report", "daily"]
    text = subprocess.run(cmd, capture_output=True, timeout=120)
    assert text.returncode == 0, text.stderr
    assert b"\x1b" not in text.stdout and b"\x07" not in text.stdout  # nothing a terminal acts on
    assert rb"to *.\x1b]0;owned\x07\x1b[2J\xff" in text.stdout
    page = subprocess.run([*cmd, "--format", "html"], capture_output=True, timeout=120)
    assert page.returncode == 0, page.stderr
    assert b"\x1b" not in page.stdout and rb"owned\x07" in page.stdout
