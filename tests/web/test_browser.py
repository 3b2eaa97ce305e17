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
