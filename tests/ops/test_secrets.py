"""Secrets stay secret: masked URLs everywhere, a scrubbed environment for children,
and private modes on the state database and the audit log (design §17)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amber.childenv import child_env, register_secret
from amber.ops.alerting.notify import Notifier
from amber.ops.alerting.policy import Event
from amber.ops.audit.chain import redact_url
from amber.ops.audit.log import AuditLog
from amber.ops.config.model import NotifyConfig
from amber.ops.config.show import mask_url as config_mask_url
from amber.ops.state import Destination, RunRecord, StateDB
from amber.redact import mask_url, redact
from tests.conftest import PASSWORD, AmberCli

# (url, secret_path, a secret that must not survive, what must survive)
MASKING = [
    ("rest:https://me:hunter2@backup.example/repo/", False, "hunter2", "rest:https://me:***@backup.example/repo/"),
    ("sftp://user:p%40ss@host/srv", False, "p%40ss", "sftp://user:***@host/srv"),
    ("s3:https://s3.example/bucket?X-Amz-Signature=abc123def&x=1", False, "abc123def", "x=1"),
    ("json://u:pw-secret@127.0.0.1:8080/hook?token=tok-secret", False, "tok-secret", "json://u:***@"),
    ("tgram://123456789:AAHsecretTOKENvalue/987654321", True, "AAHsecretTOKENvalue", "tgram://"),
    ("slack://TokenAxxxx/TokenBxxxx/TokenCsecret/#ops", True, "TokenCsecret", "slack://"),
    ("discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js", True, "JHMHI8qBe7bk2ZwO5U711o3dV_js", "discord://"),
    ("https://hc-ping.com/0fd1a2b3-secret-uuid", True, "0fd1a2b3-secret-uuid", "https://hc-ping.com/***"),
    ("mailtos://alerts:mail-pass@smtp.example.com", True, "mail-pass", "mailtos://alerts:"),
    ("json://example.com/hooks/abc123secret", True, "abc123secret", "json://example.com/***"),
    ("ntfys://tk_secret@ntfy.sh/private-topic", True, "private-topic", "ntfys://ntfy.sh/***"),
    ("gotify://push.example/ApPtOkEnSeCrEt", True, "ApPtOkEnSeCrEt", "gotify://push.example/"),
]


@pytest.mark.parametrize(("url", "secret_path", "secret", "kept"), MASKING)
def test_mask_url(url: str, secret_path: bool, secret: str, kept: str) -> None:
    shown = mask_url(url, secret_path=secret_path)
    assert secret not in shown
    assert kept in shown


def test_every_masker_is_the_same_function() -> None:
    url = "rest:https://me:hunter2@host/repo"
    assert redact_url(url) == config_mask_url(url) == mask_url(url) == "rest:https://me:***@host/repo"
    text = f"cannot reach {url}: connection refused"
    assert redact(text) == "cannot reach rest:https://me:***@host/repo: connection refused"
    tg = "tgram://123456789:AAHsecretTOKENvalue/987654321"
    assert "AAHsecretTOKENvalue" not in redact(f"error sending to {tg}", (tg,))
    api = "POST https://api.telegram.org/bot123456789:AAHsecretTOKENvalue/sendMessage: 401"
    assert redact(api, (tg,)) == "POST https://api.telegram.org/bot***/sendMessage: 401"


_URL_SAFE = "abcdefghijklmnopqrstuvwxyz0123456789-_.~!$&'()*+,;="
_safe = st.text(st.sampled_from(_URL_SAFE), min_size=4, max_size=30)


@given(user=_safe, password=_safe, host=st.sampled_from(["h", "example.com:8000"]))
def test_userinfo_password_never_survives(user: str, password: str, host: str) -> None:
    url = f"rest:https://{user}:{password}@{host}/repo"
    assert mask_url(url) == f"rest:https://{user}:***@{host}/repo"
    assert mask_url(url, secret_path=True).count(password) <= (user + host).count(password)


def test_child_env_drops_amber_secrets() -> None:
    register_secret("MY_REPO_PW")
    base = {"AMBER_PASSWORD": "x", "AMBER_PASSWORD_FILE": "/k", "AMBER_PASSWORD_COMMAND": "pass show",
            "MY_REPO_PW": "y", "PATH": "/bin", "AWS_PROFILE": "backup",
            "AMBER_REPOSITORY": "rest:http://u:pw@h/r"}  # fmt: skip
    env = child_env({"AMBER_JOB": "home"}, base=base)
    assert env == {"PATH": "/bin", "AWS_PROFILE": "backup", "AMBER_REPOSITORY": "rest:http://u:***@h/r",
                   "AMBER_JOB": "home"}  # fmt: skip


def test_stdin_command_and_password_command_get_no_password(cli: AmberCli, tmp_path: Path) -> None:
    cli.run("backup", "--stdin-from-command", "--stdin-filename", "env.txt", "--", "sh", "-c", "env")
    dumped = cli.run("dump", "latest", "/env.txt").stdout
    assert "PATH=" in dumped
    assert "AMBER_PASSWORD" not in dumped and PASSWORD not in dumped
    # the password command would print a wrong password if it could see AMBER_PASSWORD
    command = f'test -z "$AMBER_PASSWORD" && echo "{PASSWORD}" || echo leaked'
    env = {"AMBER_PASSWORD": "not-the-password"}
    out = cli.run("--password-command", command, "snapshots", env=env)
    assert out.stdout.endswith("\n1 snapshot\n")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_state_db_is_private_and_holds_no_credentials(tmp_path: Path) -> None:
    os.umask(0o022)
    path = tmp_path / "state" / "state.db"
    db = StateDB(str(path))
    run = db.begin("nightly")
    run.status = "failed"
    run.destinations.append(Destination("rest:https://me:hunter2@host/repo", "backup", "failed",
                                        "cannot reach rest:https://me:hunter2@host/repo",
                                        details={"url": "s3:https://h/b?token=tok-secret"}))  # fmt: skip
    run.errors.append("offsite rest:https://me:hunter2@host/repo: HTTP 500")
    db.finish(run)
    db.add(RunRecord(job="copy", started=1.0, status="success", errors=["sftp://u:hunter2@h/x"]))
    assert _mode(path.parent) == 0o700
    for f in path.parent.iterdir():  # the database and its -wal/-shm files
        assert _mode(f) == 0o600, f
        assert b"hunter2" not in f.read_bytes() and b"tok-secret" not in f.read_bytes(), f
    got = db.runs("nightly")[0]
    assert got.destinations[0].name == "rest:https://me:***@host/repo"


def test_state_db_made_by_an_older_version_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    StateDB(str(path))
    path.chmod(0o644)
    StateDB(str(path)).runs()
    assert _mode(path) == 0o600


def test_audit_log_and_side_files_are_private(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit" / "audit.log")
    log.append({"command": "backup", "args": []})
    log.path.chmod(0o644)  # an older version's mode
    log.append({"command": "check", "args": []})
    assert _mode(log.path.parent) == 0o700
    assert _mode(log.path) == 0o600
    assert _mode(log.head_path) == 0o600


def test_notification_targets_are_masked_in_results(tmp_path: Path) -> None:
    secret_url = "json://alerts:pw-secret@127.0.0.1:9/hook-token-secret"  # port 9: refused at once
    notifier = Notifier([NotifyConfig(url=secret_url)], str(tmp_path / "state.db"))
    (delivery,) = notifier.test()
    assert delivery.outcome == "failed"
    assert "pw-secret" not in delivery.target + delivery.error
    assert "hook-token-secret" not in delivery.target + delivery.error
    assert delivery.target.startswith("json://alerts:")
    notifier.send(Event("failure", "nightly", "boom"))  # failed: nothing recorded as sent
    notifier.table.sent(("t", "failure", "nightly"), 1.0, "fp")
    assert _mode(tmp_path / "state.db") == 0o600
    assert b"pw-secret" not in (tmp_path / "state.db").read_bytes()


def test_hooks_see_no_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from amber.ops.run import job as run_service
    from tests.ops.test_run import load, make_config

    log = tmp_path / "hook-env.txt"
    path = make_config(tmp_path, f'hooks = {{ before = ["env > {log}"] }}')
    by_file = f'password_file = "{tmp_path / "pass"}"'
    path.write_text(path.read_text().replace(by_file, 'password_env = "MAIN_REPO_PW"', 1))
    monkeypatch.setenv("MAIN_REPO_PW", PASSWORD)
    monkeypatch.setenv("AMBER_PASSWORD", PASSWORD)
    results = run_service.run_jobs(load(path), ["home"], run_service.RunOptions())
    assert [r.status for r in results] == ["success"]  # the password variable did open the repository
    seen = log.read_text()
    assert "AMBER_JOB=home" in seen
    assert PASSWORD not in seen and "MAIN_REPO_PW" not in seen
