"""The reports, local snapshots and WAL archive pages, through Starlette's TestClient."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from amber.ops.config.model import Config
from amber.ops.reports import render
from amber.ops.reports.send import SentLog
from amber.ops.run.steps import Repositories
from amber.services import session, wal
from amber.web.app import build
from amber.web.archive_pages import WalProbe
from amber.web.security import Guard, allowed_hosts, load_token
from tests.btrfs_fs import needs_btrfs, subvolume
from tests.ops.test_run_fssnap import make_job, run
from tests.web.conftest import SECRET

SEG = "000000010000000000000001"


def _client(cfg: Config) -> Iterator[TestClient]:
    token = load_token(cfg.state_dir)
    app = build(cfg, Guard(token, allowed_hosts("127.0.0.1", ["testserver"])))
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as c:
        assert c.get(f"/login?token={token}").status_code == 303
        yield c


def test_reports_page_lists_each_report_with_its_formats(logged_in: TestClient, web_config: Config) -> None:
    SentLog(web_config.state.path).add("weekly", "2026-11-30T07:00:00", 1_764_486_000.0)
    page = logged_in.get("/reports").text
    for kind in ("daily", "weekly", "monthly"):
        assert f'data-kind="{kind}"' in page and f'href="/reports/{kind}?format=json"' in page
    assert "period ending 2026-11-30T07:00:00" in page  # the weekly one was sent
    assert "not sent" in page  # no [reports] schedules in this config
    assert ('href="/reports/daily.pdf"' in page) == render.pdf_available()
    assert (render.PDF_HOWTO in page) != render.pdf_available()
    assert 'href="/reports"' in logged_in.get("/").text  # the navigation leads here


def test_report_page_is_the_report_html_with_links(logged_in: TestClient) -> None:
    response = logged_in.get("/reports/daily")
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "0 ok, 0 partial, 1 failed" in page and "Protection now" in page
    assert '<a href="/reports"' in page and '<a href="/reports/daily?format=text"' in page
    assert 'style="' in page and "<script" not in page and "<link" not in page
    text = logged_in.get("/reports/daily?format=text").text
    assert "0 ok, 0 partial, 1 failed" in text and "<pre" in text  # in the dashboard's layout
    assert logged_in.get("/reports/yearly").status_code == 404
    assert logged_in.get("/reports/yearly.pdf").status_code == 404


def test_report_pdf_downloads(logged_in: TestClient, tmp_path: Path) -> None:
    pytest.importorskip("weasyprint", reason="amber[pdf] not installed")
    response = logged_in.get("/reports/weekly.pdf")
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"].startswith('attachment; filename="amber-weekly-')
    assert response.content.startswith(b"%PDF")
    if shutil.which("pdftotext"):
        (tmp_path / "r.pdf").write_bytes(response.content)
        text = subprocess.run(["pdftotext", str(tmp_path / "r.pdf"), "-"], capture_output=True, text=True,
                              check=True).stdout  # fmt: skip
        assert "weekly report" in text and "0 ok, 0 partial, 1 failed" in text and SECRET not in text


def test_no_snapshot_jobs_no_local_snapshots_link(logged_in: TestClient) -> None:
    page = logged_in.get("/local-snapshots").text
    assert "No job takes local snapshots" in page
    assert 'href="/local-snapshots"' not in logged_in.get("/").text


@needs_btrfs
def test_local_snapshots_page_lists_kept_snapshots(tmp_path: Path, btrfs: Path) -> None:
    vol = subvolume(btrfs / "vol")
    (vol / "a").write_text("a")
    cfg = make_job(tmp_path, [vol], "snapshot_keep = 1")
    name = run(cfg).details["local_snapshot"]
    for client in _client(cfg):
        page = client.get("/local-snapshots").text
        assert f'data-name="{name}"' in page and "kept" in page and "btrfs" in page
        assert 'href="/local-snapshots"' in client.get("/").text


def test_wal_page_without_wal(logged_in: TestClient) -> None:
    assert "No configured repository holds WAL" in logged_in.get("/wal").text
    assert 'href="/wal"' not in logged_in.get("/").text


def test_wal_page_shows_the_archive_like_pg_list(tmp_path: Path) -> None:
    from tests.ops.test_run import load, make_config
    from tests.services.test_wal import fake_base, seg_name, write_wal

    cfg = load(make_config(tmp_path))
    probe = WalProbe(cfg)
    assert probe.refresh() == [] and not probe.known()
    with Repositories(cfg, session.PasswordSource()).open("main", lock=False) as repo:
        base = fake_base(repo, 1, 1, "db1")
        for n in (1, 3):  # segment 2 is missing: a gap after the base backup
            wal.push(repo, "db1", write_wal(tmp_path, seg_name(n), b"wal bytes " * 500))
    assert probe.refresh() == ["main"] and probe.known()  # mirror, usb (offline), gone: none
    for client in _client(cfg):
        page = client.get("/wal").text
        assert 'data-repository="main"' in page and 'data-cluster="db1"' in page
        assert "2 WAL files" in page and f"{seg_name(1)} .. {seg_name(3)}" in page
        assert f"1 missing from {seg_name(2)[8:]}" in page  # a position: any timeline
        assert f"<code>{base[:8]}</code>" in page and "2026-01-01T00:00:00+00:00" in page
        client.app.state.dashboard.wal.refresh()  # type: ignore[attr-defined]
        assert 'href="/wal"' in client.get("/").text


def test_wal_page_names_an_unreadable_repository_not_its_location(tmp_path: Path) -> None:
    from tests.ops.test_run import load, make_config

    cfg = load(make_config(tmp_path))
    (tmp_path / SEG).write_bytes(b"wal " * 100)
    with Repositories(cfg, session.PasswordSource()).open("main", lock=False) as repo:
        wal.push(repo, "db1", str(tmp_path / SEG))
    (tmp_path / "pass").write_text("a wrong password\n")
    for client in _client(cfg):
        page = client.get("/wal").text
        assert 'data-repository="main"' in page and 'class="error"' in page
        assert str(tmp_path / "main") not in page and "a wrong password" not in page
