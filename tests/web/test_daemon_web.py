"""`amber daemon` with ``[web] listen``: the dashboard and /metrics in the daemon's process."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from amber.web.security import token_path
from tests.ops.test_run import load, make_config

SERVING = re.compile(r"dashboard on (http://127\.0\.0\.1:\d+/)")


@pytest.mark.slow
def test_daemon_serves_dashboard_and_metrics_and_stops_on_sigterm(tmp_path: Path) -> None:
    path = make_config(tmp_path, extra='[web]\nlisten = "127.0.0.1:0"\n')
    cfg = load(path)
    proc = subprocess.Popen([sys.executable, "-m", "amber", "--config", str(path), "daemon", "--tick", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stderr is not None
        base = ""
        for line in proc.stderr:
            if match := SERVING.search(line):
                base = match.group(1)
                break
        assert base, "the daemon never said where the dashboard is"
        token = Path(token_path(cfg.state_dir)).read_text().strip()
        assert token not in line  # the token stays in its 0600 file, out of the logs
        assert httpx.get(f"{base}healthz").text == "ok"
        assert httpx.get(f"{base}metrics").status_code == 401
        scraped = httpx.get(f"{base}metrics", headers={"authorization": f"Bearer {token}"}, timeout=30)
        assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
        assert "amber_metrics_generated_timestamp_seconds" in scraped.text
        status = httpx.get(f"{base}api/v1/status", headers={"authorization": f"Bearer {token}"}, timeout=30)
        assert [j["name"] for j in status.json()["jobs"]] == ["home"]
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    try:
        httpx.get(f"{base}healthz", timeout=2)
        raise AssertionError("still serving after the daemon stopped")
    except httpx.TransportError:
        pass


def test_daemon_refuses_a_public_address_without_tls(tmp_path: Path) -> None:
    path = make_config(tmp_path, extra='[web]\nlisten = "0.0.0.0:0"\n')
    done = subprocess.run([sys.executable, "-m", "amber", "--config", str(path), "daemon", "--once"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "refusing to serve 0.0.0.0 without TLS" in done.stderr
    assert "Traceback" not in done.stderr
