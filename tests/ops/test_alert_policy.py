"""Alert policy (pure): filters, dedup and rate limits, stale and capacity rules."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from amber.ops.alerting import policy as ap
from amber.ops.alerting.policy import Event, Sent


@dataclass(frozen=True)
class Target:
    url: str = "json://x"
    events: tuple[str, ...] = ("failure", "integrity")
    min_interval_seconds: float = 3600
    jobs: tuple[str, ...] = ()


@pytest.mark.parametrize(
    ("target", "event", "wanted"),
    [
        (Target(), Event("failure", "home"), True),
        (Target(), Event("success", "home"), False),
        (Target(jobs=("db",)), Event("failure", "home"), False),
        (Target(jobs=("db",)), Event("failure", "db"), True),
        (Target(jobs=("db",)), Event("integrity"), True),  # not about one job
        (Target(events=()), Event("test"), True),
    ],
)
def test_targets_filter_by_event_and_job(target: Target, event: Event, wanted: bool) -> None:
    assert ap.wants(target, event) is wanted


FAIL = Event("failure", "home", "repository missing")
SAME = Event("integrity", "home", "pack 9f8e damaged")


@pytest.mark.parametrize(
    ("last", "event", "now", "send"),
    [
        (None, FAIL, 1000, True),
        (Sent(1000, FAIL.fingerprint), FAIL, 1001, False),  # identical, inside the interval
        (Sent(1000, FAIL.fingerprint), Event("failure", "home", "other"), 1001, False),  # rate limit
        (Sent(1000, FAIL.fingerprint), FAIL, 1000 + 3600, True),  # interval over
        (Sent(1000, "x"), Event("integrity", "home", "pack abc damaged"), 1001, True),  # new problem: at once
        (Sent(1000, SAME.fingerprint), SAME, 1001, False),  # the same integrity problem again
    ],
)
def test_dedup_and_rate_limit(last: Sent | None, event: Event, now: float, send: bool) -> None:
    assert ap.should_send(last, event, now, 3600) is send


@pytest.mark.parametrize(
    ("kind", "cleared"),
    [("success", {"failure", "partial", "stale"}), *((k, set()) for k in ap.KINDS if k != "success")],
)
def test_what_each_event_clears(kind: str, cleared: set[str]) -> None:
    assert set(ap.cleared_by(Event(kind, "home"))) == cleared


def test_success_clears_failure_state_and_keys_hide_urls() -> None:
    assert set(ap.cleared_by(Event("success", "home"))) >= {"failure", "partial"}
    assert ap.cleared_by(FAIL) == ()
    key = ap.dedup_key("mailto://u:secret@host", FAIL)
    assert "secret" not in "".join(key) and key[1:] == ("failure", "home")


NOW = dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("last", "stale"),
    [
        (None, True),
        (NOW - dt.timedelta(hours=27), True),
        (NOW - dt.timedelta(hours=26), True),
        (NOW - dt.timedelta(hours=25), False),
    ],
)
def test_dead_mans_switch(last: dt.datetime | None, stale: bool) -> None:
    events = ap.stale_events({"home": last}, NOW, 26)
    assert bool(events) is stale
    if stale:
        assert events[0].kind == "stale" and events[0].job == "home" and "home" in events[0].message


@pytest.mark.parametrize(
    ("total", "used", "threshold", "alert"),
    [(100, 79, 80, False), (100, 80, 80, True), (100, 95, 80, True), (0, 0, 80, False), (100, 50, 50, True)],
)
def test_capacity_threshold(total: int, used: int, threshold: float, alert: bool) -> None:
    event = ap.capacity_event("usb", total, used, threshold)
    assert (event is not None) is alert
    if event:
        assert event.repository == "usb" and f"{100 * used / total:.1f}%" in event.message


@pytest.mark.parametrize(
    ("base", "phase", "url"),
    [
        ("https://hc-ping.com/abc", "start", "https://hc-ping.com/abc/start"),
        ("https://hc-ping.com/abc/", "success", "https://hc-ping.com/abc"),
        ("https://hc/{job}", "fail", "https://hc/home/fail"),
    ],
)
def test_ping_urls(base: str, phase: str, url: str) -> None:
    assert ap.ping_url(base, phase, "home") == url


def test_render_names_job_problem_and_suppressed_count() -> None:
    event = Event("failure", "home", "no repository at /x", "usb", {"exit_code": 10})
    title, body = ap.render(event, 3, "pc")
    assert "FAILED" in title and "home" in title and "pc" in title
    assert "no repository at /x" in body and "usb" in body and "exit_code: 10" in body and "3 similar" in body
