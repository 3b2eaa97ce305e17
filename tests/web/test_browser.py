"""A real browser on the dashboard: Debian's chromium driven by Playwright (no browser download).

Logs in through the token URL, sees the job card, clicks Run now and watches
the progress change over Server-Sent Events without a reload, with no console
or CSP errors. Screenshots go to the test's tmp dir. Skipped, with the
reason, when chromium or Playwright is missing or chromium cannot start.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from amber.web import server
from tests.ops.test_run import load, make_config

SEG = "000000010000000000000001"
CHROMIUM = os.environ.get("AMBER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is missing")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as pw:
        try:
            launched = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                          args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
        except Exception as exc:
            pytest.skip(f"chromium cannot start: {str(exc).splitlines()[0]}")
        yield launched
        launched.close()


@pytest.mark.slow
def test_login_run_now_and_live_progress(browser: Any, tmp_path: Path) -> None:
    # the before hook keeps the run going long enough to watch it change state
    cfg = load(make_config(tmp_path, 'schedule = "daily"\nhooks = { before = ["sleep 2"] }'))
    served = server.start(server.prepare(cfg, server.WebOptions("127.0.0.1:0"), print))
    problems: list[str] = []
    navigations: list[str] = []
    try:
        page = browser.new_page()
        page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("framenavigated", lambda f: navigations.append(f.url) if f == page.main_frame else None)
        page.goto(served.url)
        assert page.url.endswith("/")  # the token left the address bar
        card = page.locator('section.card[data-job="home"]')
        card.wait_for()
        text = card.inner_text().lower()  # the stylesheet upper-cases the verdict
        assert "unprotected" in text and "no successful backup yet" in text
        page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)

        card.get_by_role("button", name="Run now").click()
        page.wait_for_url("**/jobs/home")
        page.locator('.live [data-status="running"]').wait_for(timeout=20_000)
        loaded = len(navigations)
        page.screenshot(path=str(tmp_path / "running.png"), full_page=True)
        page.locator('.live [data-status="success"]').wait_for(timeout=60_000)
        assert len(navigations) == loaded, "the page reloaded; progress must arrive over SSE"
        assert "2 files" in page.locator(".live").inner_text()
        page.screenshot(path=str(tmp_path / "finished.png"), full_page=True)
        assert problems == []
    finally:
        served.stop()
    for shot in ("overview.png", "running.png", "finished.png"):
        assert (tmp_path / shot).stat().st_size > 1000
    print(f"screenshots in {tmp_path}")


CSP_WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
                          (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));
"""


@pytest.mark.slow
def test_every_page_renders_without_csp_violations(browser: Any, tmp_path: Path) -> None:
    from amber.ops.audit.log import AuditLog, operation_fields
    from amber.ops.drills.history import DrillHistory, DrillRow
    from amber.ops.run import job as run_service
    from amber.ops.run.steps import Repositories
    from amber.services import session, wal

    cfg = load(make_config(tmp_path, 'schedule = "daily"'))
    for _ in range(2):  # two runs: the charts have two bars
        run_service.run_jobs(cfg, ["home"], run_service.RunOptions())
    now = __import__("time").time()
    DrillHistory(cfg.state.path).add(DrillRow(now - 60, now - 50, "main", "home", "sample", "success", [], 2,
                                              4096, 10.0, 409.6, 100.0, 1, None, []))  # fmt: skip
    AuditLog(Path(cfg.state.audit_log)).append(operation_fields("drill", ["drill"], 0))
    (tmp_path / SEG).write_bytes(b"wal " * 100)  # WAL in repository main: the WAL page has a section
    with Repositories(cfg, session.PasswordSource()).open("main", lock=False) as repo:
        wal.push(repo, "db1", str(tmp_path / SEG))
    served = server.start(server.prepare(cfg, server.WebOptions("127.0.0.1:0"), print))
    problems: list[str] = []
    try:
        page = browser.new_page()
        page.add_init_script(CSP_WATCH)  # runs outside the page's CSP, before its own scripts
        page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.goto(served.url)
        expected = {"/jobs/home": "svg.chart", "/fleet": "tr[data-job='home']",
                    "/repos/main": "table.snapshots code", "/drills": "table.drills tbody tr",
                    "/audit": "table.audit tbody tr", "/reports": "tr[data-kind='monthly']",
                    "/reports/daily?format=text": "pre.report", "/local-snapshots": "main p",
                    "/wal": "section.wal[data-repository='main'] table.base-backups",
                    # the report's own HTML, under its own CSP: its inline styles must apply
                    "/reports/daily": "h1", "/reports/monthly": "table"}  # fmt: skip
        for path, selector in expected.items():
            page.goto(served.base.rstrip("/") + path)
            page.locator(selector).first.wait_for(timeout=20_000)
            violations = page.evaluate("window.__csp")
            assert violations == [], f"{path}: {violations}"
            shot = path.strip("/").replace("/", "-").replace("?format=", "-")
            page.screenshot(path=str(tmp_path / f"{shot}.png"), full_page=True)
        page.goto(served.base.rstrip("/") + "/reports/daily")
        weight = page.evaluate("getComputedStyle(document.querySelector('h1')).fontSize")
        assert weight == "20px", "the report's inline styles were blocked"
        assert page.locator("a[href='/reports']").count() == 1
        page.goto(served.base.rstrip("/") + "/jobs/home")
        assert page.locator("svg.chart").count() == 4
        assert page.locator("svg.chart rect.bar").count() >= 8  # sizes, duration and files bars of two runs
        assert page.locator("svg.chart rect.bar.s1").count() == 2  # stored, beside logical
        box = page.locator("svg.chart").first.bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 50  # drawn, not collapsed
        assert problems == []
        page.locator("header form.logout button").click()
        page.wait_for_url("**/login")
        page.wait_for_timeout(500)  # the login page opens no event stream: nothing to refuse
        assert problems == []
        assert page.goto(served.base.rstrip("/") + "/fleet").status == 401
    finally:
        served.stop()
    shots = sorted(tmp_path.glob("*.png"))
    assert len(shots) == 11 and all(s.stat().st_size > 1000 for s in shots)
    print(f"screenshots in {tmp_path}")
