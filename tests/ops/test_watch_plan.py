"""When a watcher takes its next snapshot, and whether it walks everything (ops/watch/plan.py)."""

from __future__ import annotations

from amber.ops.watch.plan import WatchPlan


def test_start_owes_a_full_walk_at_once() -> None:
    plan = WatchPlan(interval=60, rescan=86400)
    assert plan.next_run() == 0.0 and plan.full_at(100.0)
    assert plan.started(100.0, True) is None  # no change yet: nothing to report as an RPO
    assert plan.next_run() == 100.0 + 86400  # idle: only the daily rescan is due


def test_a_burst_of_changes_is_one_snapshot_one_interval_after_the_first() -> None:
    plan = WatchPlan(interval=60, rescan=86400)
    plan.started(0.0, True)
    for t in (10.0, 11.0, 50.0, 69.0):
        plan.changed(t)
    assert plan.next_run() == 70.0 and not plan.full_at(70.0)
    assert plan.started(70.0, False) == 10.0
    assert plan.next_run() == 86400.0


def test_an_overflow_walks_everything_at_once() -> None:
    plan = WatchPlan(interval=60, rescan=86400)
    plan.started(0.0, True)
    plan.changed(5.0)
    plan.lost_events(6.0)
    assert plan.next_run() == 6.0 and plan.full_at(6.0)
    assert plan.started(6.0, True) == 5.0
    assert plan.full_due is None and plan.last_full == 6.0


def test_a_failed_run_is_retried_as_a_full_walk_after_the_interval_and_keeps_its_first_change() -> None:
    plan = WatchPlan(interval=60, rescan=86400)
    plan.started(0.0, True)
    plan.changed(10.0)
    first = plan.started(70.0, False)
    plan.finished(False, 75.0, first)
    assert plan.next_run() == 135.0 and not plan.full_at(134.0) and plan.full_at(135.0)
    assert plan.started(135.0, True) == 10.0  # the RPO counts from the change that waited


def test_the_rescan_comes_daily_even_while_changes_keep_coming() -> None:
    plan = WatchPlan(interval=60, rescan=3600)
    plan.started(0.0, True)
    plan.changed(3590.0)
    assert plan.next_run() == 3600.0 and plan.full_at(3600.0)


def test_periodic_mode_walks_everything_every_interval() -> None:
    plan = WatchPlan(interval=60, rescan=86400, periodic=True)
    plan.started(0.0, True)
    assert plan.next_run() == 60.0 and plan.full_at(60.0)
    plan.started(60.0, True)
    assert plan.next_run() == 120.0
