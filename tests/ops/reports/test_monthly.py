"""The monthly report: growth and forecast from samples, coverage, durations, recommendations."""

from __future__ import annotations

import time
from pathlib import Path

from amber.ops.reports import monthly
from amber.ops.reports.usage import UsageLog
from amber.ops.state import RunRecord, StateDB
from tests.ops.test_run import load, make_config

DAY = 86400.0
GIB = 2**30


def test_monthly_report(tmp_path: Path) -> None:
    cfg = load(make_config(tmp_path))
    db, usage, now = StateDB(cfg.state.path), UsageLog(cfg.state.path), time.time()
    for d in range(10, 0, -1):  # main grows 1 GiB a day, 10 GiB of room left after the last sample
        usage.record("main", now - d * DAY, (100 - d) * GIB, 109 * GIB)
    for d in range(1, 11):  # this month: 10 daily runs of 60 s, one failed
        db.add(RunRecord("home", now - d * DAY, now - d * DAY + 60, "failed" if d == 5 else "success"))
    for d in range(31, 36):  # last month: 30 s
        db.add(RunRecord("home", now - d * DAY, now - d * DAY + 30, "success"))
    report = monthly.monthly(cfg, now)
    main = next(r for r in report.repositories if r.name == "main")
    assert main.samples == 10 and main.growth_per_day is not None
    assert abs(main.growth_per_day - GIB) < 1e-3 * GIB
    assert main.forecast in ("full in 8 days", "full in 9 days")  # 10 GiB left a day ago: 9 days from now
    [job] = report.jobs
    assert job.runs == 10 and job.success_rate == 0.9 and job.days_covered == 9
    assert job.median_duration == 60 and job.last_median_duration == 30
    recs = report.recommendations
    assert any(r.startswith("add space to main: full in") for r in recs)
    assert "home: median duration grew 100% against last month" in recs
    assert "home: never restore-drilled" in recs  # the verdict's reasons become advice
    text = monthly.render_text(report)
    assert "+1.0 GiB/day" in text and "\nRecommendations\n" in text and "main: used space per day" in text
