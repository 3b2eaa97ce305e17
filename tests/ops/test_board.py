"""The status board from a real run's state: verdict inputs come from what the run recorded."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

from amber.ops import board
from amber.ops.anomaly_acks import AckLog
from amber.ops.drills.history import DrillHistory, DrillRow
from amber.ops.reports.usage import UsageLog
from amber.ops.run import job as run_service
from amber.ops.state import Destination, RunRecord, StateDB
from amber.ops.verdict import AT_RISK, DAY, PROTECTED, UNPROTECTED
from tests.ops.test_run import load, make_config


def test_board_before_and_after_a_run_and_a_drill(tmp_path: Path) -> None:
    cfg = load(make_config(tmp_path, 'schedule = "daily"', mirrors='["mirror"]'))
    [before] = board.board(cfg)
    assert before.verdict.verdict == UNPROTECTED and "no successful backup yet" in before.verdict.texts
    assert before.next_run is not None and before.facts.interval == DAY

    run_service.run_jobs(cfg, ["home"], run_service.RunOptions())
    [after] = board.board(cfg)
    assert after.last_run is not None and after.last_run.status == "success"
    assert after.facts.verification is not None and after.facts.verification.ok
    assert after.facts.copies is not None and not after.facts.copies.passed  # two disks, none offsite
    assert after.verdict.verdict == AT_RISK
    assert "never restore-drilled" in after.verdict.texts
    assert any("3-2-1-1-0 not met" in t for t in after.verdict.texts)
    assert after.destinations[0].fill is not None  # local repository sampled from its filesystem
    assert len(UsageLog(cfg.state.path).samples("main")) == 1

    now = after.facts.now
    DrillHistory(cfg.state.path).add(DrillRow(now, now, "main", "home", "sample", "success", [], 1, 1, 1.0,
                                              1.0, 1.0, 0, None, []))  # fmt: skip
    [drilled] = board.board(cfg, now=now + 60)
    assert "never restore-drilled" not in drilled.verdict.texts
    api = drilled.as_dict()
    assert api["name"] == "home" and api["verdict"] == drilled.verdict.verdict
    assert api["last_run"]["status"] == "success" and api["destinations"][0]["name"] == "main"

    [late] = board.board(cfg, now=now + 5 * DAY, sample=False)
    assert late.verdict.verdict == UNPROTECTED
    assert any("last successful backup 5 days ago" in t for t in late.verdict.texts)
    assert PROTECTED not in late.verdict.texts


def test_a_recorded_suspicious_snapshot_is_at_risk_until_acknowledged(tmp_path: Path) -> None:
    cfg = load(make_config(tmp_path, 'schedule = "daily"'))
    now = 1_000 * DAY
    anomaly = {"verdict": "suspicious", "reasons": ["30 of 40 files renamed to .locked"]}
    backup = Destination("main", "backup", "success", snapshot_id="feedface" * 8,
                         details={"anomaly": anomaly})  # fmt: skip
    StateDB(cfg.state.path).add(RunRecord("home", now - 3600, now - 3500, "success", snapshot_ids=["x"],
                                          destinations=[backup]))  # fmt: skip
    [flagged] = board.board(cfg, now=now, sample=False)
    assert flagged.verdict.verdict in (AT_RISK, UNPROTECTED)
    [reason] = [t for t in flagged.verdict.texts if "suspicious" in t]
    assert "feedface" in reason and "30 of 40 files renamed" in reason
    AckLog(cfg.state.path).record("feedface" * 8, "0" * 64, now)
    [acked] = board.board(cfg, now=now, sample=False)
    assert not any("suspicious" in t for t in acked.verdict.texts)
    assert acked.facts.anomalies[0].acknowledged


def test_amber_status_lists_verdicts_with_the_suspicious_reason(tmp_path: Path) -> None:
    path = make_config(tmp_path, 'schedule = "daily"')
    cfg = load(path)
    now = time.time()
    anomaly = {"verdict": "suspicious", "reasons": ["12 of 20 files renamed to .crypt"]}
    backup = Destination("main", "backup", "success", snapshot_id="c0ffee00" * 8,
                         details={"anomaly": anomaly})  # fmt: skip
    StateDB(cfg.state.path).add(RunRecord("home", now - 60, now - 30, "success", destinations=[backup]))
    amber = [sys.executable, "-m", "amber", "--config", str(path), "status"]
    text = subprocess.run(amber, capture_output=True, text=True, timeout=120, check=True).stdout
    assert text.splitlines()[0].startswith("WARN  home: at-risk, ")
    reason = ("      - snapshot c0ffee00 (1 min ago) tagged suspicious: 12 of 20 files renamed to .crypt; "
              "review it, then `amber anomaly ack c0ffee00`")  # fmt: skip
    assert reason in [re.sub(r"\(\d+ min ago\)", "(1 min ago)", line) for line in text.splitlines()]
    body = json.loads(subprocess.run([*amber, "--json"], capture_output=True, text=True, timeout=120,
                                     check=True).stdout)  # fmt: skip
    [job] = body["jobs"]
    assert job["verdict"] == "at-risk" and job["suspicious"][0]["snapshot"] == "c0ffee00" * 8
