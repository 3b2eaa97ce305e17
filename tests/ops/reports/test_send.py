"""Sending reports to a real SMTP server on loopback: the parts, the subject, once per period."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

import pytest

from amber.ops.reports import send
from amber.ops.state import RunRecord, StateDB
from tests.ops.test_run import load, make_config
from tests.receivers import (  # noqa: F401 (fixtures)
    HttpReceiver,
    SmtpSink,
    body_text,
    http_receiver_fixture,
    smtp_server_fixture,
)

MIDNIGHT = dt.datetime(2026, 3, 2).timestamp()  # local time, as OnCalendar is


def _config(tmp_path: Path, port: int, reports: str) -> Path:
    extra = f"""
[[notify]]
url = "mailto://127.0.0.1:{port}?to=ops@example.com&from=amber@example.com"
events = ["failure", "summary"]

{reports}
"""
    return make_config(tmp_path, 'schedule = "daily"', extra=extra)


def _parts(msg: object) -> dict[str, object]:
    found = {}
    for part in msg.walk():  # type: ignore[attr-defined]
        if not part.is_multipart():
            found[part.get_content_type()] = part.get_content()
    return found


def test_scheduled_report_mail_has_text_html_and_pdf_and_goes_once(
    tmp_path: Path, smtp_server: tuple[SmtpSink, int]
) -> None:
    pytest.importorskip("weasyprint", reason="amber[pdf] not installed")
    sink, port = smtp_server
    cfg = load(_config(tmp_path, port, '[reports.daily]\nschedule = "daily"\npdf = true'))
    db = StateDB(cfg.state.path)
    db.add(RunRecord("home", MIDNIGHT - 3600, MIDNIGHT - 3500, "success", 1000, 3))
    db.add(RunRecord("home", MIDNIGHT - 1800, MIDNIGHT - 1700, "failed", errors=["disk on fire"]))

    first = send.send_scheduled(cfg, "daily", MIDNIGHT + 600)
    assert first.status == "sent" and first.period == "2026-03-02T00:00:00"
    [mail] = sink.wait(1)
    assert mail["Subject"].startswith("amber daily report on ")
    assert mail["Subject"].endswith(": 0 ok, 0 partial, 1 failed; 1 at-risk")
    assert mail["To"] == "ops@example.com" and mail["From"] == "amber@example.com"
    parts = _parts(mail)
    assert set(parts) == {"text/plain", "text/html", "application/pdf"}
    assert "disk on fire" in str(parts["text/plain"]) and "disk on fire" in str(parts["text/html"])
    assert "<svg" not in str(parts["text/html"])  # mail clients: bars as table cells
    pdf = parts["application/pdf"]
    assert isinstance(pdf, bytes) and pdf.startswith(b"%PDF")

    assert send.send_scheduled(cfg, "daily", MIDNIGHT + 700).status == "already-sent"
    restarted = send.ReportsExtension(clock=lambda: MIDNIGHT + 800)  # the daemon came back
    restarted.start(cfg)
    restarted.tick(cfg)
    time.sleep(0.3)
    assert len(sink.messages) == 1  # the period was recorded in the state database

    nxt = send.send_scheduled(cfg, "daily", MIDNIGHT + 86400 + 60)
    assert nxt.status == "sent" and nxt.period == "2026-03-03T00:00:00"
    assert len(sink.wait(2)) == 2


def test_a_report_configured_today_does_not_send_last_months_period(
    tmp_path: Path, smtp_server: tuple[SmtpSink, int]
) -> None:
    sink, port = smtp_server
    cfg = load(_config(tmp_path, port, '[reports.monthly]\nschedule = "monthly"\nhtml = false'))
    assert send.send_scheduled(cfg, "monthly", MIDNIGHT + 5 * 86400).status == "idle"  # the 1st is 4 days ago
    out = send.send_scheduled(cfg, "monthly", dt.datetime(2026, 4, 1, 0, 5).timestamp())
    assert out.status == "sent" and out.period == "2026-04-01T00:00:00"
    [mail] = sink.wait(1)
    assert set(_parts(mail)) == {"text/plain"} and "Anomalies" in body_text(mail)


def test_failed_delivery_is_not_recorded(tmp_path: Path) -> None:
    cfg = load(_config(tmp_path, 1, '[reports.daily]\nschedule = "daily"\nhtml = false'))  # nobody on port 1
    failed = send.send_scheduled(cfg, "daily", MIDNIGHT + 60)
    assert failed.status == "failed" and "127.0.0.1:1" in failed.deliveries[0].error
    assert not send.SentLog(cfg.state.path).has("daily", failed.period)


@pytest.mark.slow  # three amber processes
def test_cli_send_and_daemon(
    tmp_path: Path, smtp_server: tuple[SmtpSink, int], http_receiver: HttpReceiver
) -> None:
    sink, port = smtp_server
    path = _config(tmp_path, port, '[reports.weekly]\nschedule = "minutely"\nhtml = true')
    path.write_text(path.read_text() + f'\n[[notify]]\nurl = "{http_receiver.url("json", "/r")}"\n'
                    'events = ["summary"]\n')  # fmt: skip
    amber = [sys.executable, "-m", "amber", "--config", str(path)]
    sent = subprocess.run([*amber, "report", "weekly", "--send"], capture_output=True, text=True, timeout=120)
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout == "" and sent.stderr.count("sent the weekly report to") == 2
    [mail] = sink.wait(1)
    assert "0 ok, 0 partial, 0 failed; 0/1 jobs verified" in mail["Subject"]
    assert {"text/plain", "text/html"} <= set(_parts(mail))
    hook = http_receiver.wait(1)[0].json()
    assert "amber weekly report" in hook["title"] and "Protection now" in hook["message"]

    daemon = subprocess.run([*amber, "daemon", "--once"], capture_output=True, text=True, timeout=120)
    assert daemon.returncode == 0, daemon.stderr
    assert "sent the weekly report for" in daemon.stderr  # minutely: one occurrence in the last hour
    assert len(sink.wait(2)) == 2


def _local(*args: int) -> float:
    return dt.datetime(*args).timestamp()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("schedule", "since", "now", "expected"),
    [
        ("daily", _local(2026, 3, 1, 12), _local(2026, 3, 2, 0, 5), "2026-03-02T00:00:00"),
        ("daily", _local(2026, 3, 1, 12), _local(2026, 3, 1, 23, 59), None),
        ("daily", _local(2026, 2, 1), _local(2026, 3, 2, 8), "2026-03-02T00:00:00"),  # the latest only
        ("Mon *-*-* 07:00", _local(2026, 3, 1), _local(2026, 3, 4), "2026-03-02T07:00:00"),
        ("monthly", _local(2026, 1, 31), _local(2026, 3, 15), "2026-03-01T00:00:00"),
        ("daily", _local(2026, 3, 2) - 1, _local(2026, 3, 2, 1), "2026-03-02T00:00:00"),  # includes
    ],
)
def test_latest_occurrence(schedule: str, since: float, now: float, expected: str | None) -> None:
    found = send.latest_occurrence(schedule, since, now)
    assert (found.isoformat(timespec="seconds") if found else None) == expected
