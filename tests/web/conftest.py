"""A configured dashboard over a real state database, for TestClient and real-server tests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from amber.ops.config.model import Config
from amber.ops.state import RunRecord, StateDB
from amber.web.app import build
from amber.web.security import Guard, allowed_hosts, load_token
from tests.ops.test_run import load, make_config

SECRET = "hunter2-secret"
CLOUD = f"""
[repositories.cloud]
url = "rest:https://alice:{SECRET}@backup.example/repo"
password_file = "{{pass_file}}"
"""


@pytest.fixture
def web_config(tmp_path: Path) -> Config:
    path = make_config(tmp_path, 'schedule = "hourly"')
    path.write_text(path.read_text() + CLOUD.replace("{pass_file}", str(tmp_path / "pass")))
    cfg = load(path)
    started = time.time() - 3600  # recent: the daily report shows it too
    failed = RunRecord("home", started, started + 10, "failed",
                       errors=[f"cannot reach rest:https://alice:{SECRET}@backup.example/repo"])  # fmt: skip
    StateDB(cfg.state.path).add(failed)
    return cfg


@pytest.fixture
def token(web_config: Config) -> str:
    return load_token(web_config.state_dir)


@pytest.fixture
def client(web_config: Config, token: str) -> Iterator[TestClient]:
    app = build(web_config, Guard(token, allowed_hosts("127.0.0.1", ["testserver"])))
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as c:
        yield c
    app.state.dashboard.runner.join(120)


@pytest.fixture
def logged_in(client: TestClient, token: str) -> TestClient:
    assert client.get(f"/login?token={token}").status_code == 303
    return client
