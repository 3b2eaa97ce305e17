"""The weekly report: fingerprints, percentiles, this week against the last, coverage."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from amber.ops.drills.history import DrillHistory, DrillRow
from amber.ops.reports import weekly
from amber.ops.state import Destination, RunRecord, StateDB
from tests.ops.test_run import load, make_config

DAY = 86400.0


@pytest.mark.parametrize(
    ("message", "expect"),
    [
        ("pack 3fa9c2d1e0b7 damaged", "pack <hex> damaged"),
        ("read /home/u/a.txt: permission denied", "read <path>: permission denied"),
        ("timeout after 30 s on sftp://nas/srv", "timeout after <n> s on <url>"),
        ("3 file(s) skipped", "<n> file(s) skipped"),
        ("plain words", "plain words"),
    ],
)
def test_fingerprint(message: str, expect: str) -> None:
    assert weekly.fingerprint(message) == expect


@pytest.mark.parametrize(
    ("values", "q", "expect"),
    [([], 50, None), ([4.0], 95, 4.0), ([1.0, 2.0, 3.0], 50, 2.0),
     ([float(i) for i in range(1, 101)], 95, 95.05)],
)
def test_percentile(values: list[float], q: float, expect: float | None) -> None:
    assert weekly.percentile(values, q) == (pytest.approx(expect) if expect is not None else None)


def test_weekly_report(tmp_path: Path) -> None:
    cfg = load(make_config(tmp_path))
    db, now = StateDB(cfg.state.path), time.time()
    check = Destination("main", "check", "success")
    for day in range(1, 7):  # this week: 6 runs, 2 failed with the same pattern
        failed = day in (2, 4)
        errors = [f"read /srv/f{day}: I/O error"] if failed else []
        status = "failed" if failed else "success"
        db.add(RunRecord("home", now - day * DAY, now - day * DAY + 10 * day, status, 100, 1, [],
                         [check] if day == 1 else [], errors))  # fmt: skip
    db.add(RunRecord("home", now - 9 * DAY, now - 9 * DAY + 5, "success", 50))  # last week
    DrillHistory(cfg.state.path).add(DrillRow(now - DAY, now - DAY, "main", "", "sample", "success", [], 1, 1,
                                              1.0, 1.0, 1.0, 0, None, []))  # fmt: skip
    report = weekly.weekly(cfg, now)
    [job] = report.jobs
    assert job.this.runs == 6 and job.this.success_rate == pytest.approx(4 / 6)
    assert job.last.runs == 1 and job.last.success_rate == 1.0 and job.last.bytes_added == 50
    assert job.this.bytes_added == 600 and job.this.p50 == pytest.approx(35.0)
    assert job.verified and job.drilled  # the drill of the job's repository counts
    assert job.errors == [("read <path>: I/O error", 2)]
    text = weekly.render_text(report)
    assert "1/1 jobs verified, 1/1 drilled" in text and "2 x read <path>: I/O error" in text
    assert weekly.render_json(report).count('"success_rate"') == 1
