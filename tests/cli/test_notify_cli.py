"""Alerts end to end: `amber run` of a broken job mails the operator within seconds; notify test."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import AmberCli
from tests.receivers import (  # noqa: F401 (fixtures)
    HttpReceiver,
    SmtpSink,
    body_text,
    http_receiver_fixture,
    smtp_server_fixture,
)


def write_config(tmp_path: Path, *targets: str) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "f").write_text("data")
    notify = "".join(f'\n[[notify]]\nurl = "{t}"\nevents = ["failure", "integrity"]\nmin_interval = "1h"\n'
                     for t in targets)  # fmt: skip
    path = tmp_path / "amber.toml"
    path.write_text(f"""
[repositories.usb]
url = "{tmp_path / 'missing-usb-disk'}"
password_env = "AMBER_PASSWORD"

[jobs.home]
paths = ["{src}"]
repository = "usb"
{notify}
[state]
path = "{tmp_path / 'state' / 'state.db'}"
""")
    return path


def test_failed_run_sends_one_email_within_seconds(
    tmp_path: Path, smtp_server: tuple[SmtpSink, int], http_receiver: HttpReceiver
) -> None:
    sink, port = smtp_server
    mailto = f"mailto://127.0.0.1:{port}?to=ops@example.com&from=amber@example.com"
    config = write_config(tmp_path, mailto, http_receiver.url("json", "/hook"))
    cli = AmberCli(tmp_path / "unused", tmp_path)
    started = time.monotonic()
    result = cli.run("--config", str(config), "run", "home", check=False)
    assert result.returncode == 10, result.stderr  # RepositoryNotFound
    mail = sink.wait(1, timeout=10)[0]
    assert time.monotonic() - started < 60
    assert "FAILED" in mail["Subject"] and "home" in mail["Subject"]
    body = body_text(mail)
    assert "no repository at" in body and "missing-usb-disk" in body
    assert "FAILED" in http_receiver.wait(1)[0].json()["title"]

    again = cli.run("--config", str(config), "run", "home", check=False)
    assert again.returncode == 10
    time.sleep(1)
    assert len(sink.messages) == 1 and len(http_receiver.requests) == 1  # same failure inside min_interval


def test_notify_test_reports_each_target(tmp_path: Path, http_receiver: HttpReceiver) -> None:
    config = write_config(tmp_path, http_receiver.url("json", "/ok"), "json://127.0.0.1:1/closed")
    cli = AmberCli(tmp_path / "unused", tmp_path)
    one = cli.run("--config", str(config), "notify", "test", "--target", "1", check=False)
    assert one.returncode == 0 and "sent" in one.stdout, (one.stdout, one.stderr)
    assert "test notification" in http_receiver.wait(1)[0].json()["title"]
    both = cli.run("--config", str(config), "notify", "test", check=False)
    assert both.returncode == 25 and "failed" in both.stdout, (both.stdout, both.stderr)
    assert both.stderr.startswith("amber: 1 of 2 notification(s) failed"), both.stderr
