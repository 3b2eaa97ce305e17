"""`amber daemon` keeps a watcher running for a job with ``watch = true``; its snapshots reach the mirror."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.ops.test_run import make_config, snapshot_count


def _until(what: str, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 90
    while not ready():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.3)


@pytest.mark.slow
def test_the_daemon_watches_a_job_and_copies_each_snapshot_to_its_mirror(tmp_path: Path) -> None:
    path = make_config(tmp_path, 'watch = true\nwatch_interval = "1s"', mirrors='["mirror"]')
    proc = subprocess.Popen([sys.executable, "-m", "amber", "--config", str(path), "daemon", "--tick", "0.5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        _until("the first full walk on the mirror", lambda: snapshot_count(tmp_path / "mirror") == 1)
        (tmp_path / "src" / "a.txt").write_text("changed\n")
        _until("the change's snapshot on the mirror", lambda: snapshot_count(tmp_path / "mirror") == 2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "daemon: watching job home" in err
    assert snapshot_count(tmp_path / "main") == 2
