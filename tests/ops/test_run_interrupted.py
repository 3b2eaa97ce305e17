"""`amber run` after a signal: recorded as interrupted, alerted, no further job (in-process)."""

from __future__ import annotations

from pathlib import Path

import pytest

from amber.errors import Terminated
from amber.events import Subscriber
from amber.ops.run import job as run_service
from amber.ops.state import StateDB
from amber.services.context import OperationContext
from tests.ops.test_run import Recorder, load, make_config


def test_a_second_signal_stops_at_once_and_is_still_recorded_and_alerted(tmp_path: Path) -> None:
    cfg = load(make_config(tmp_path))
    ctx = OperationContext()
    recorder = Recorder()

    class SecondSignal(Subscriber):
        def notice(self, kind: str, message: str) -> None:
            if kind == "note" and "backup" in message:  # the first signal came earlier; this is the second
                ctx.cancel.cancel(Terminated())
                raise KeyboardInterrupt

    ctx.events.subscribe(recorder)
    ctx.events.subscribe(SecondSignal())
    options = run_service.RunOptions(context=ctx)
    with pytest.raises(KeyboardInterrupt):
        run_service.run_jobs(cfg, ["home"], options)
    [run] = StateDB(cfg.state.path).runs("home")
    assert run.status == "interrupted" and run.errors == ["terminated, at once"]
    assert [e.kind for e in recorder.events] == ["start", "failure"]
    assert "interrupted" in recorder.events[-1].message


def test_a_stopped_caller_starts_no_job(tmp_path: Path) -> None:
    cfg = load(make_config(tmp_path))
    ctx = OperationContext()
    ctx.cancel.cancel(Terminated())
    assert run_service.run_jobs(cfg, ["home"], run_service.RunOptions(context=ctx)) == []
    assert StateDB(cfg.state.path).runs("home") == []
