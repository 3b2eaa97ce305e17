"""Sessions persist in SQLite: they survive a restart, end at logout, on expiry and on token rotation."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from amber.ops.config.model import Config
from amber.web import security, server
from amber.web.app import build
from amber.web.security import COOKIE, Guard, Sessions, allowed_hosts, sessions_path


def _client(cfg: Config, token: str) -> TestClient:
    sessions = Sessions(sessions_path(cfg.state_dir))
    guard = Guard(token, allowed_hosts("127.0.0.1", ["testserver"]), sessions=sessions)
    return TestClient(build(cfg, guard), base_url="http://testserver", follow_redirects=False)


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "no CSRF field on the page"
    return match.group(1)


def test_a_session_survives_a_restart_and_ends_at_logout(web_config: Config, token: str) -> None:
    first = _client(web_config, token)
    assert first.get(f"/login?token={token}").status_code == 303
    cookie = first.cookies[COOKIE]
    path = sessions_path(web_config.state_dir)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert cookie.encode() not in Path(path).read_bytes()  # only its hash is stored

    restarted = _client(web_config, token)  # a new server process would build exactly this
    restarted.cookies.set(COOKIE, cookie)
    page = restarted.get("/")
    assert page.status_code == 200
    out = restarted.post("/logout", data={"csrf": _csrf(page.text)})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert "amber_session=" in out.headers["set-cookie"] and "Max-Age=0" in out.headers["set-cookie"]
    first.cookies.set(COOKIE, cookie)
    assert first.get("/").status_code == 401  # gone for every server sharing the state directory


def test_logout_needs_the_csrf_token(logged_in: TestClient) -> None:
    assert logged_in.post("/logout", data={"csrf": "wrong"}).status_code == 403
    assert logged_in.get("/").status_code == 200


def test_sessions_expire(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sessions = Sessions(str(tmp_path / "s.db"))
    sid, _ = sessions.create()
    assert sessions.get(sid) is not None
    monkeypatch.setattr(security, "SESSION_SECONDS", -1)
    assert sessions.get(sid) is None
    monkeypatch.undo()
    assert sessions.get(sid) is None  # and it was deleted, not only hidden


def test_rotating_the_token_ends_every_session(web_config: Config, token: str) -> None:
    sessions = Sessions(sessions_path(web_config.state_dir))
    sid, _ = sessions.create()
    served = server.prepare(web_config, server.WebOptions("127.0.0.1:0", rotate_token=True), print)
    served.sock.close()
    assert sessions.get(sid) is None
    assert served.app.state.dashboard.guard.token != token
