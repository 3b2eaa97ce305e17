"""The dashboard over HTTP (Starlette's TestClient): authentication, Host, CSRF, headers, secrets."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import stat
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from amber.errors import UsageError
from amber.ops.config.model import Config
from amber.ops.state import StateDB
from amber.web import security, server
from amber.web.live import LiveRun, Runner
from amber.web.report_pages import REPORT_CSP
from tests.conftest import PASSWORD
from tests.ops.test_run import load, make_config
from tests.web.conftest import SECRET

PAGES = ["/", "/jobs/home", "/api/v1/status", "/login", "/fleet", "/repos", "/repos/main", "/repos/cloud",
         "/drills", "/audit", "/audit?q=x&command=job&page=2",
         "/reports", "/reports/daily?format=text", "/reports/daily?format=json", "/local-snapshots", "/wal"]
REPORT_PAGES = ["/reports/daily", "/reports/weekly", "/reports/monthly"]  # their own CSP: inline styles
STATIC = Path(security.__file__).parent / "static"
PINNED = {  # npm: htmx.org@2.0.11 dist/htmx.min.js, htmx-ext-sse@2.2.4 dist/sse.min.js
    "htmx.min.js": "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717",
    "sse.min.js": "98a46496de0c3605fbffdce9167ba427bdd9553184f83f149c261891a92c0136",
}


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "the page has no CSRF field"
    return found.group(1)


@pytest.mark.parametrize("path", ["/", "/jobs/home", "/api/v1/status", "/events", "/reports",
                                  "/reports/daily", "/reports/daily.pdf", "/local-snapshots", "/wal"])
def test_pages_need_a_session(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 401
    assert client.post("/jobs/home/run").status_code == 401


def test_health_and_static_are_public(client: TestClient) -> None:
    assert client.get("/healthz").text == "ok"
    assert client.get("/static/htmx.min.js").status_code == 200


def test_bad_host_is_refused_before_anything_else(client: TestClient, token: str) -> None:
    assert client.get("/healthz", headers={"host": "evil.example"}).status_code == 400
    assert client.get(f"/login?token={token}", headers={"host": "rebind.example:8080"}).status_code == 400


def test_login_sets_a_strict_http_only_cookie(client: TestClient, token: str) -> None:
    assert client.get("/login?token=wrong").status_code == 401
    response = client.get(f"/login?token={token}")
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
    assert client.get("/").status_code == 200


def test_bearer_token_reads_the_status_api(client: TestClient, token: str) -> None:
    assert client.get("/api/v1/status", headers={"authorization": "Bearer nope"}).status_code == 401
    body = client.get("/api/v1/status", headers={"authorization": f"Bearer {token}"}).json()
    assert body["version"] == 1
    [job] = body["jobs"]
    assert {"name", "verdict", "reasons", "last_run", "next_run", "schedule", "destinations"} <= set(job)
    assert job["name"] == "home" and job["verdict"] == "unprotected"
    assert "no successful backup yet" in job["reasons"] and job["next_run"] is not None
    assert job["last_run"]["status"] == "failed"


def test_post_needs_csrf_token_and_same_origin(logged_in: TestClient, web_config: Config) -> None:
    csrf = _csrf(logged_in.get("/").text)
    assert logged_in.post("/jobs/home/run", headers={"origin": "http://testserver"}).status_code == 403
    wrong = logged_in.post("/jobs/home/run", data={"csrf": "x" * 43}, headers={"origin": "http://testserver"})
    assert wrong.status_code == 403
    foreign = logged_in.post("/jobs/home/run", data={"csrf": csrf}, headers={"origin": "http://evil.example"})
    assert foreign.status_code == 403
    cross = logged_in.post("/jobs/home/run", data={"csrf": csrf}, headers={"sec-fetch-site": "cross-site"})
    assert cross.status_code == 403
    assert len(StateDB(web_config.state.path).runs("home")) == 1  # nothing started


def test_get_cannot_change_state(logged_in: TestClient) -> None:
    assert logged_in.get("/jobs/home/run").status_code == 405


def test_run_now_runs_the_job_through_ops(logged_in: TestClient, web_config: Config) -> None:
    csrf = _csrf(logged_in.get("/").text)
    response = logged_in.post("/jobs/home/run", data={"csrf": csrf}, headers={"origin": "http://testserver"})
    assert response.status_code == 303 and response.headers["location"] == "/jobs/home"
    dashboard = logged_in.app.state.dashboard  # type: ignore[attr-defined]
    dashboard.runner.join(120)
    live = dashboard.runner.live["home"]
    assert live.status == "success" and live.files == 2 and live.bytes > 300_000
    assert StateDB(web_config.state.path).runs("home")[0].status == "success"
    page = logged_in.get("/jobs/home").text
    assert 'data-status="success"' in page and "no successful backup yet" not in page


@pytest.mark.parametrize("path", PAGES)
def test_security_headers_on_every_response(logged_in: TestClient, path: str) -> None:
    headers = logged_in.get(path).headers
    csp = headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "same-origin"


@pytest.mark.parametrize("path", REPORT_PAGES)
def test_report_pages_allow_inline_styles_and_nothing_else(logged_in: TestClient, path: str) -> None:
    response = logged_in.get(path)
    assert response.headers.get_list("content-security-policy") == [REPORT_CSP]  # replaces, not adds
    assert "default-src 'none'" in REPORT_CSP and "script" not in REPORT_CSP
    assert "<script" not in response.text and response.headers["x-frame-options"] == "DENY"


def test_secrets_are_absent_from_every_page(logged_in: TestClient, token: str) -> None:
    for path in PAGES + REPORT_PAGES + ["/reports/daily.pdf"]:
        text = logged_in.get(path).text
        assert token not in text, path
        assert SECRET not in text, path
        assert PASSWORD not in text, path
    assert "cannot reach" in logged_in.get("/jobs/home").text  # the error itself is shown, masked


def test_overview_shows_a_card_per_job_without_javascript(logged_in: TestClient) -> None:
    page = logged_in.get("/").text
    assert 'data-job="home"' in page and "unprotected" in page and "no successful backup yet" in page
    assert '<form method="post" action="/jobs/home/run"' in page  # Run now works as a plain form


def test_vendored_javascript_is_pinned() -> None:
    for name, digest in PINNED.items():
        assert hashlib.sha256((STATIC / name).read_bytes()).hexdigest() == digest, name


def test_token_is_private_and_rotates(tmp_path: Path) -> None:
    first = security.load_token(str(tmp_path / "state"))
    path = security.token_path(str(tmp_path / "state"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and len(first) >= 40
    assert security.load_token(str(tmp_path / "state")) == first
    assert security.load_token(str(tmp_path / "state"), rotate=True) != first


@pytest.mark.parametrize(
    ("listen", "insecure", "tls", "ok"),
    [
        ("127.0.0.1:0", False, False, True),
        ("[::1]:8080", False, False, True),
        ("localhost:8080", False, False, True),
        ("0.0.0.0:8080", False, False, False),
        ("192.0.2.7:8080", True, False, True),
        ("192.0.2.7:8080", False, True, True),
    ],
)
def test_listen_rules(listen: str, insecure: bool, tls: bool, ok: bool) -> None:
    warnings: list[str] = []
    options = server.WebOptions(listen, "c" if tls else None, "k" if tls else None, insecure)
    host, _port = server.split_listen(listen)
    if ok:
        assert server.check_listen(host, options, warnings.append) == tls
        assert bool(warnings) == insecure
    else:
        with pytest.raises(UsageError, match="without TLS"):
            server.check_listen(host, options, warnings.append)


@pytest.mark.parametrize("listen", ["8080", "host:", ":80", "h:99999"])
def test_bad_listen_is_a_usage_error(listen: str) -> None:
    with pytest.raises(UsageError):
        server.split_listen(listen)


def test_host_names() -> None:
    assert security.host_name("[::1]:8080") == "::1"
    assert security.host_name("Example.org:80") == "example.org"
    assert security.host_name("localhost") == "localhost"


def test_unknown_job_is_404(logged_in: TestClient) -> None:
    assert logged_in.get("/jobs/nope").status_code == 404
    csrf = _csrf(logged_in.get("/").text)
    missing = logged_in.post("/jobs/nope/run", data={"csrf": csrf}, headers={"origin": "http://testserver"})
    assert missing.status_code == 404


def test_a_job_runs_once_at_a_time(tmp_path: Path) -> None:
    cfg = load(make_config(tmp_path, 'hooks = { before = ["sleep 1"] }'))
    changes: list[LiveRun] = []
    runner = Runner(cfg, changes.append)
    assert runner.start("home") is True
    assert runner.start("home") is False  # still in its before hook
    runner.join(120)
    assert runner.live["home"].status == "success" and runner.live["home"].eta is None
    assert changes[0].job == "home" and changes[-1].phase == "finished"
    assert runner.start("home") is True  # finished: may run again
    assert runner.live["home"].expected_bytes > 300_000  # the last success read this much
    runner.join(120)


def _act(client: TestClient, csrf: str, action: str) -> None:
    response = client.post(f"/jobs/home/{action}", data={"csrf": csrf},
                           headers={"origin": "http://testserver", "accept": "application/json"})  # fmt: skip
    assert response.status_code == 202
    assert response.json() == {"job": "home", "action": action, "started": True}
    dashboard = client.app.state.dashboard  # type: ignore[attr-defined]
    dashboard.runner.join(120)
    assert dashboard.runner.live["home"].status == "success", dashboard.runner.live["home"].message


def test_check_now_and_drill_now_feed_the_verdict(logged_in: TestClient) -> None:
    page = logged_in.get("/").text
    csrf = _csrf(page)
    for cli in ("amber run home", "amber run --check-only home", "amber drill --job home"):
        assert cli in page  # each action shows its CLI equivalent
    assert logged_in.post("/jobs/home/explode", data={"csrf": csrf},
                          headers={"origin": "http://testserver"}).status_code == 404  # fmt: skip
    for action in ("run", "check", "drill"):
        _act(logged_in, csrf, action)
    [job] = logged_in.get("/api/v1/status").json()["jobs"]
    assert "never verified" not in job["reasons"] and "never restore-drilled" not in job["reasons"]
    assert job["live"]["status"] == "success"


def test_allowed_hosts() -> None:
    assert security.allowed_hosts("127.0.0.1") >= {"127.0.0.1", "localhost", "::1"}
    assert security.allowed_hosts("192.0.2.7", ["backup.example"]) == {"192.0.2.7", "backup.example"}
    everywhere = security.allowed_hosts("0.0.0.0")
    assert socket.gethostname().lower() in everywhere and "localhost" in everywhere
    assert "evil.example" not in everywhere


def test_report_pages(logged_in: TestClient) -> None:
    daily = logged_in.get("/reports/daily").text
    assert "0 ok, 0 partial, 1 failed" in daily and "cannot reach" in daily  # the fixture's failed run
    assert logged_in.get("/reports/monthly?format=json").json()["jobs"][0]["job"] == "home"
    assert logged_in.get("/reports/yearly").status_code == 404
