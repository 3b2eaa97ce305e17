"""Notifications through real receivers: SMTP (aiosmtpd), webhook (json://) and ntfy over HTTP."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from amber.events import RunEvent
from amber.ops.alerting import notify
from amber.ops.alerting.policy import Event
from amber.ops.config.model import parse_config
from tests.receivers import (  # noqa: F401 (fixtures)
    HttpReceiver,
    SmtpSink,
    body_text,
    http_receiver_fixture,
    smtp_server_fixture,
)


@dataclass(frozen=True)
class Target:
    url: str
    events: tuple[str, ...] = ("failure", "partial", "integrity", "capacity", "stale")
    min_interval_seconds: float = 3600
    jobs: tuple[str, ...] = ()


def mailto(port: int) -> str:
    return f"mailto://127.0.0.1:{port}?to=ops@example.com&from=amber@example.com"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_failure_reaches_email_webhook_and_ntfy(
    tmp_path: Path, http_receiver: HttpReceiver, smtp_server: tuple[SmtpSink, int]
) -> None:
    sink, port = smtp_server
    targets = [Target(mailto(port)), Target(http_receiver.url("json", "/hook")),
               Target(http_receiver.url("ntfy", "/amber-alerts"))]  # fmt: skip
    notifier = notify.Notifier(targets, str(tmp_path / "state.db"))
    results = notifier.send(Event("failure", "home", "no repository at /media/usb", "usb", {"exit_code": 10}))
    assert [d.outcome for d in results] == ["sent", "sent", "sent"]

    mail = sink.wait(1)[0]
    assert "FAILED" in mail["Subject"] and "home" in mail["Subject"]
    assert mail["To"] == "ops@example.com"
    assert "no repository at /media/usb" in body_text(mail) and "exit_code: 10" in body_text(mail)

    requests = http_receiver.wait(2)
    hook = next(r for r in requests if r.path == "/hook").json()
    assert "FAILED" in hook["title"] and "no repository at /media/usb" in hook["message"]
    assert hook["type"] == "failure"
    ntfy = next(r for r in requests if r.path != "/hook").json()
    assert ntfy["topic"] == "amber-alerts" and "no repository at /media/usb" in ntfy["message"]


def test_repeats_are_suppressed_until_the_interval_passes(
    tmp_path: Path, http_receiver: HttpReceiver
) -> None:
    clock = Clock()
    db = str(tmp_path / "state.db")
    target = Target(http_receiver.url("json", "/hook"), min_interval_seconds=600)
    event = Event("failure", "home", "repository missing")
    assert notify.Notifier([target], db, clock).send(event)[0].outcome == "sent"
    clock.now += 60  # a new process (the table is in the state DB), same failure
    assert notify.Notifier([target], db, clock).send(event)[0].outcome == "suppressed"
    assert notify.Notifier([target], db, clock).send(event)[0].outcome == "suppressed"
    assert len(http_receiver.requests) == 1
    clock.now += 600
    assert notify.Notifier([target], db, clock).send(event)[0].outcome == "sent"
    message = http_receiver.wait(2)[1].json()["message"]
    assert "2 similar alert(s) suppressed" in message


def test_integrity_goes_out_at_once_and_success_rearms_failures(
    tmp_path: Path, http_receiver: HttpReceiver
) -> None:
    notifier = notify.Notifier([Target(http_receiver.url("json", "/hook"))], str(tmp_path / "s.db"), Clock())
    assert notifier.send(Event("integrity", "home", "pack 1a2b: SHA-256 mismatch"))[0].outcome == "sent"
    assert notifier.send(Event("integrity", "home", "pack 9f8e: SHA-256 mismatch"))[0].outcome == "sent"
    assert notifier.send(Event("integrity", "home", "pack 9f8e: SHA-256 mismatch"))[0].outcome == "suppressed"
    assert notifier.send(Event("failure", "home", "x"))[0].outcome == "sent"
    assert notifier.send(Event("success", "home", "ok")) == []  # the target does not want successes
    assert notifier.send(Event("failure", "home", "x"))[0].outcome == "sent"  # re-armed by the success
    assert len(http_receiver.wait(4)) == 4


def test_a_success_rearms_the_stale_alert(tmp_path: Path, http_receiver: HttpReceiver) -> None:
    """The dead man's switch fires again at once after a success, inside the rate-limit interval."""
    clock = Clock()
    db = str(tmp_path / "s.db")
    target = Target(http_receiver.url("json", "/hook"), min_interval_seconds=3600)
    stale = Event("stale", "home", "no successful backup of job home for 27.0 hours (limit 26)")
    assert notify.Notifier([target], db, clock).send(stale)[0].outcome == "sent"
    clock.now += 60
    assert notify.Notifier([target], db, clock).send(stale)[0].outcome == "suppressed"
    clock.now += 60
    assert notify.Notifier([target], db, clock).send(Event("success", "home", "ok")) == []
    assert notify.Notifier([target], db, clock).send(Event("success", "other", "ok")) == []
    clock.now += 60  # still well inside the hour since the first stale message
    assert notify.Notifier([target], db, clock).send(stale)[0].outcome == "sent"
    other = Event("stale", "other", "job other has never completed a successful backup")
    assert notify.Notifier([target], db, clock).send(other)[0].outcome == "sent"
    clock.now += 60
    assert notify.Notifier([target], db, clock).send(Event("success", "home", "ok")) == []
    assert notify.Notifier([target], db, clock).send(other)[0].outcome == "suppressed"  # only its own job
    assert len(http_receiver.wait(3)) == 3


def test_filters_and_failed_delivery_are_reported(tmp_path: Path, http_receiver: HttpReceiver) -> None:
    http_receiver.status = 500
    targets = [Target(http_receiver.url("json", "/db-only"), jobs=("db",)),
               Target(http_receiver.url("json", "/broken"))]  # fmt: skip
    results = notify.Notifier(targets, str(tmp_path / "s.db")).send(Event("failure", "home", "x"))
    assert len(results) == 1 and results[0].outcome == "failed" and results[0].error
    assert [r.path for r in http_receiver.requests] == ["/broken"]


def test_healthchecks_pings(http_receiver: HttpReceiver) -> None:
    base = http_receiver.url("http", "/ping/{job}")
    assert notify.ping(base, "start", "home") == ""
    assert notify.ping(base, "success", "home", "job home: success") == ""
    assert notify.ping(base, "fail", "home") == ""
    assert [(r.method, r.path) for r in http_receiver.wait(3)] == [
        ("GET", "/ping/home/start"), ("POST", "/ping/home"), ("GET", "/ping/home/fail")]  # fmt: skip
    assert http_receiver.requests[1].body == b"job home: success"
    assert "failed" in notify.ping("http://127.0.0.1:1/x", "start")  # never raises


def config_text(tmp_path: Path, notify_url: str, extra: str = "") -> str:
    return f"""
[repositories.local]
url = "{tmp_path / 'repo'}"
password_env = "AMBER_PASSWORD"
{extra}
[jobs.home]
paths = ["{tmp_path / 'src'}"]
repository = "local"

[[notify]]
url = "{notify_url}"
events = ["failure", "capacity", "stale"]
min_interval = "1h"

[alerts]
stale_hours = 26
healthchecks_url = "{notify_url.replace('json://', 'http://')}/hc"

[state]
path = "{tmp_path / 'state' / 'state.db'}"
audit_log = "{tmp_path / 'state' / 'audit.log'}"
"""


def test_run_observer_alerts_pings_and_checks_capacity(tmp_path: Path, http_receiver: HttpReceiver) -> None:
    url = http_receiver.url("json", "")
    cfg = parse_config(config_text(tmp_path, url, "capacity_alert_percent = 1"), "t.toml")
    observer = notify.AlertObserver(cfg)
    observer.run_event(RunEvent("start", "home", "job home started", "local"))
    observer.run_event(RunEvent("failure", "home", "job home: failed: no repository", "local",
                               {"status": "failed", "errors": ["no repository at x"]}))  # fmt: skip
    paths = [r.path for r in http_receiver.wait(4)]
    assert paths[:2] == ["/hc/start", "/hc/fail"]
    bodies = {r.json()["title"]: r.json()["message"] for r in http_receiver.requests if r.path == "/"}
    assert any("FAILED" in t and "no repository at x" in m for t, m in bodies.items())
    assert any("storage almost full" in t and "local" in t for t in bodies)  # any disk is >= 1% used


def test_stale_jobs_are_found_from_the_state_db(tmp_path: Path, http_receiver: HttpReceiver) -> None:
    cfg = parse_config(config_text(tmp_path, http_receiver.url("json", "")), "t.toml")
    found = notify.check_alerts(cfg, dt.datetime.now(dt.UTC))
    stale = [(e, d) for e, d in found if e.kind == "stale"]
    assert len(stale) == 1 and "never completed" in stale[0][0].message and stale[0][1][0].outcome == "sent"
    again = notify.check_alerts(cfg, dt.datetime.now(dt.UTC))
    assert [d.outcome for e, ds in again if e.kind == "stale" for d in ds] == ["suppressed"]
