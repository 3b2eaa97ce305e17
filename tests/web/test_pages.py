"""The fleet, repository, drills and audit pages, and the job page's charts, over TestClient."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from typing import Any

import msgspec
import pytest
from starlette.testclient import TestClient

from amber.ops.audit.log import AuditLog, operation_fields
from amber.ops.config.model import Config
from amber.ops.drills.history import DrillHistory, DrillRow
from amber.ops.run import job as run_service
from amber.ops.state import RunRecord, StateDB
from amber.repository import open_repository
from amber.repository.run_records import FleetRecord, RunEntry
from amber.repository.sealing import Kind
from amber.storage import open_backend
from amber.storage.base import FileType, Handle
from amber.web.pages import audit_page
from tests.conftest import PASSWORD
from tests.web.conftest import SECRET

NEW_PAGES = ["/fleet", "/repos", "/repos/main", "/drills", "/audit"]


def test_metrics_take_the_token_or_a_session(client: TestClient, token: str) -> None:
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"authorization": "Bearer wrong"}).status_code == 401
    scraped = client.get("/metrics", headers={"authorization": f"Bearer {token}"})
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain; version=")
    assert 'amber_job_runs{job="home",status="failed"} 1.0' in scraped.text
    assert client.get(f"/login?token={token}").status_code == 303
    assert "amber_job_runs" in client.get("/metrics").text


@pytest.mark.parametrize("path", NEW_PAGES)
def test_new_pages_need_a_session(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 401


def test_after_a_run_the_job_fleet_and_repository_pages_show_it(logged_in: TestClient, web_config: Config,
                                                                ) -> None:  # fmt: skip
    [result] = run_service.run_jobs(web_config, ["home"], run_service.RunOptions())
    assert result.status == "success"
    job = logged_in.get("/jobs/home").text
    assert job.count('<svg class="chart"') == 4
    assert "Logical size" in job and '<rect class="bar s1 success"' in job  # the run's stored bytes
    assert "Backup duration per run" in job and '<rect class="bar success"' in job
    assert '<rect class="bar failed"' in job  # the failed run from the fixture, in red

    fleet = logged_in.get("/fleet").text
    assert f'data-host="{socket.gethostname()}" data-job="home"' in fleet
    assert "cloud: rest:" in fleet and SECRET not in fleet  # the unreachable repository is named, masked
    assert "gone: no repository at &lt;gone&gt;" in fleet and "absent-nas" not in fleet  # named, not located

    repo = logged_in.get("/repos/main").text
    assert "Snapshots (1)" in repo and "<code>" in repo
    assert '<tr class="success"><td>home</td>' in repo  # the run's check of main
    assert "Backups of home." in repo and "No copies recorded." in repo
    assert logged_in.get("/repos/nope").status_code == 404


def test_drills_page(logged_in: TestClient, web_config: Config) -> None:
    now = time.time()
    history = DrillHistory(web_config.state.path)
    history.add(DrillRow(now - 100, now - 90, "main", "home", "sample", "success", [], 3, 4096, 10.0, 409.6,
                         100.0, 1, None, []))  # fmt: skip
    history.add(DrillRow(now - 50, now - 45, "main", "home", "sample", "integrity", [], 3, 4096, 5.0, 819.2,
                         50.0, 2, None, [f"bad file at rest:https://alice:{SECRET}@x/y"]))  # fmt: skip
    page = logged_in.get("/drills").text
    assert page.count('<tr class="failed">') == 2  # the stats row (last failed) and the failed drill
    assert "50%" in page and "bad file" in page and SECRET not in page


def test_audit_page_filters_and_shows_the_chain(logged_in: TestClient, web_config: Config) -> None:
    log = AuditLog(__import__("pathlib").Path(web_config.state.audit_log))
    log.append(operation_fields("backup", ["backup", "/srv"], 0))
    log.append(operation_fields("prune", ["prune"], 12, error="repository locked"))
    page = logged_in.get("/audit").text
    assert "Hash chain intact: 2 record(s)" in page and "2 matching record(s)" in page
    only = logged_in.get("/audit?command=prune").text
    assert "1 matching record(s)" in only and "repository locked" in only
    assert "0 matching" in logged_in.get("/audit?q=nothing-like-this").text
    text = log.path.read_text().replace('"backup"', '"restore"', 1)  # tamper with record 1
    log.path.write_text(text)
    assert "Hash chain broken at record 1" in logged_in.get("/audit").text


def _records(n: int) -> list[dict[str, Any] | None]:
    return [{"seq": i, "command": "job" if i % 2 else "prune", "args": [f"a{i}"]} for i in range(1, n + 1)]


@pytest.mark.parametrize(("records", "command", "text", "page", "expected_seqs", "pages"), [
    (_records(0), "", "", 1, [], 1),
    (_records(5), "", "", 1, [5, 4, 3], 2),
    (_records(5), "job", "", 1, [5, 3, 1], 1),
    (_records(5), "", "A3", 1, [3], 1),
    (_records(7), "", "", 2, [4, 3, 2], 3),
    (_records(7), "", "", 99, [1], 3),  # past the end: the last page
    (_records(7), "", "", -1, [7, 6, 5], 3),
    ([None, *_records(2)], "", "", 1, [2, 1], 1),  # an unparsable line is skipped
])  # fmt: skip
def test_audit_paging(records: list[dict[str, Any] | None], command: str, text: str, page: int,
                      expected_seqs: list[int], pages: int) -> None:  # fmt: skip
    found = audit_page(records, command, text, page, per_page=3)
    assert [r["seq"] for r in found.rows] == expected_seqs and found.pages == pages


def test_pages_show_names_with_undecodable_bytes_and_escapes(
    logged_in: TestClient, web_config: Config
) -> None:
    """A run's error quoting a name from the backed-up machine (here an anomaly's extension)."""
    now = time.time()
    error = "snapshot 1a2b3c4d tagged suspicious: 900 files renamed, 900 of them to *" + os.fsdecode(
        b".<b>\x1b[2J\xff"
    )
    StateDB(web_config.state.path).add(RunRecord("home", now - 60, now - 50, "failed", errors=[error]))
    for path in ("/jobs/home", "/reports/daily", "/reports/daily?format=text"):
        page = logged_in.get(path)
        assert page.status_code == 200, path
        assert b"<b>" not in page.content and b"\x1b" not in page.content, path
        assert rb"\x1b[2J\xff" in page.content, path
    for path in ("/api/v1/status", "/reports/daily?format=json"):
        assert logged_in.get(path).status_code == 200, path


def test_the_fleet_page_survives_a_record_dated_beyond_year_9999(
    logged_in: TestClient, web_config: Config
) -> None:
    """A key holder publishes a run record whose times are finite but absurd (1e20 s)."""
    repo = open_repository(open_backend(web_config.repositories["main"].url), PASSWORD.encode())
    try:
        run = RunEntry(started=1e20, ended=1e20, status="success")
        record = FleetRecord("far-future", "home", 1e20, 3600.0, "protected", [], [run])
        sealed = repo.sealer.seal(Kind.RUNS, msgspec.msgpack.encode(record))  # as save_record, unchecked
        repo.backend.save(Handle(FileType.RUNS, hashlib.sha256(sealed).hexdigest()), sealed)
    finally:
        repo.close()
    fleet = logged_in.get("/fleet")
    assert fleet.status_code == 200
    assert 'data-host="far-future"' not in fleet.text and "main: 1 records refused" in fleet.text
