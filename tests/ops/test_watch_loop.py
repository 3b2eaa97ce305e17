"""The watch loop in-process: past the watch limit it walks everything every interval; a cancel ends it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from amber.errors import Terminated
from amber.ops.config.model import parse_config
from amber.ops.watch.loop import WatchOptions, watch_job
from tests.ops.test_run import Notes, make_config, noted, snapshot_count


@pytest.mark.slow
def test_past_the_watch_limit_it_scans_every_interval_and_a_cancel_stops_it(tmp_path: Path) -> None:
    path = make_config(tmp_path, 'watch_interval = "1s"')
    cfg = parse_config(path.read_text(), str(path))
    collected = Notes()
    options = WatchOptions(noted(collected, check=False), max_watches=1)
    ctx, notes = options.run.context, collected.lines
    outcome: list[BaseException] = []

    def watch() -> None:
        try:
            watch_job(cfg, "home", options)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=watch)
    thread.start()
    try:
        deadline = time.monotonic() + 90
        while snapshot_count(tmp_path / "main") < 3:  # no change at all: periodic full walks
            assert time.monotonic() < deadline and thread.is_alive(), notes
            time.sleep(0.2)
    finally:
        ctx.cancel.cancel(Terminated())
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], Terminated)
    assert any("falling back to a full scan every 1s" in n for n in notes), notes
