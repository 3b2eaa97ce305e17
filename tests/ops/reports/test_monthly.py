"""The monthly report: growth and forecast from samples, coverage, durations, recommendations."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from amber.ops.reports import monthly
from amber.ops.reports.forecast import Sample
from amber.ops.reports.usage import UsageLog, sample_repositories
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


def _samples(*points: tuple[int, int | None]) -> list[Sample]:
    """(used GiB, snapshots) a day apart."""
    return [Sample(i * DAY, used * GIB, None, snaps) for i, (used, snaps) in enumerate(points)]


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        ([(100, 10), (111, 10)], (0.11, 10, 10)),  # grew 11 %, same snapshots
        ([(100, 10), (105, 12), (120, 8)], (0.2, 10, 8)),  # grew while snapshots went down
        ([(100, 10), (110, 10)], None),  # exactly 10 %: not more
        ([(100, 10), (150, 11)], None),  # more snapshots hold the data
        ([(100, 10), (90, 10)], None),  # shrinking
        ([(100, 10)], None),  # one counted sample
        ([(100, None), (200, None)], None),  # never counted (samples from before the column)
        ([(100, None), (100, 10), (130, 10)], (0.3, 10, 10)),  # only counted samples compare
        ([(0, 1), (5, 1)], None),  # nothing stored at first: no ratio
    ],
)
def test_stored_outgrows_snapshots(points: list[tuple[int, int | None]],
                                   expected: tuple[float, int, int] | None) -> None:  # fmt: skip
    found = monthly.stored_outgrows_snapshots(_samples(*points))
    if expected is None:
        assert found is None
    else:
        assert found is not None and found[1:] == expected[1:] and abs(found[0] - expected[0]) < 1e-9


def test_the_monthly_report_recommends_looking_at_data_growing_without_snapshots(tmp_path: Path) -> None:
    cfg = load(make_config(tmp_path))
    usage, now = UsageLog(cfg.state.path), time.time()
    for d, (used, snaps) in zip((20, 10, 1), ((100, 30), (120, 31), (130, 30)), strict=True):
        usage.record("mirror", now - d * DAY, used * GIB, 1000 * GIB, snaps)
    recs = monthly.monthly(cfg, now).recommendations
    assert ("mirror: stored data grew 30% this month while its snapshots did not (30 -> 30): "
            "check its retention and what its backups now take in") in recs  # fmt: skip
    assert not any(r.startswith("main: stored data") for r in recs)


def test_usage_samples_gain_the_snapshot_count_in_place(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    with sqlite3.connect(path) as db:  # the table as it was before the column
        db.execute("CREATE TABLE usage_samples (repository TEXT NOT NULL, day TEXT NOT NULL, taken REAL NOT "
                   "NULL, used INTEGER NOT NULL, total INTEGER, PRIMARY KEY (repository, day))")  # fmt: skip
        db.execute("INSERT INTO usage_samples VALUES ('main', '2026-01-01', 1767225600, 5, 10)")
    db.close()
    log = UsageLog(path)
    assert log.samples("main") == [Sample(1767225600, 5, 10, None)]  # kept, count unknown
    log.record("main", 1767312000, 6, 10, 3)
    assert log.samples("main")[-1] == Sample(1767312000, 6, 10, 3)
    assert UsageLog(path).samples("main")[-1].snapshots == 3  # opening again migrates nothing twice


def test_sampling_counts_the_snapshots_of_local_repositories(tmp_path: Path) -> None:
    from amber.ops.run import job as run_service

    cfg = load(make_config(tmp_path))
    for _ in range(2):
        run_service.run_jobs(cfg, ["home"], run_service.RunOptions())
    log = UsageLog(cfg.state.path)
    sample_repositories(cfg, log, time.time())
    assert log.samples("main")[-1].snapshots == 2 and log.samples("mirror")[-1].snapshots == 0
    assert log.samples("gone") == []  # not there: nothing sampled
