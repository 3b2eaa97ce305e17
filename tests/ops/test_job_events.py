"""Two jobs running at once in one process: each one's options, progress and run events stay its own;
and a dashboard sees the progress of a run it did not start."""

from __future__ import annotations

import gc
import os
import threading
from pathlib import Path

from amber.events import EventSink, RunEvent, Subscriber
from amber.ops.run import job as run_service
from amber.services.context import OperationContext
from amber.services.operations import RUNNING, OperationRegistry
from amber.storage.url import BackendOptions
from amber.web.live import LiveRun, Runner
from tests.ops.test_run import load, make_config


class JobLog(Subscriber):
    """One caller's subscriber; waits at the start until the other job has started too."""

    def __init__(self, both_started: threading.Barrier) -> None:
        self.both_started = both_started
        self.files: list[bytes] = []
        self.bytes = 0
        self.jobs: set[str] = set()
        self.kinds: list[str] = []
        self.steps: list[str] = []

    def file_done(self, path: bytes, size: int, status: str) -> None:
        self.files.append(path)

    def bytes_done(self, n: int) -> None:
        self.bytes += n

    def notice(self, kind: str, message: str) -> None:
        if kind == "step":
            self.steps.append(message)

    def run_event(self, event: RunEvent) -> None:
        self.jobs.add(event.job)
        self.kinds.append(event.kind)
        if event.kind == "start":
            self.both_started.wait(60)  # both jobs are running now


class Options:
    """Records each job's backend options as the registry announces its context."""

    def __init__(self) -> None:
        self.of: dict[str, BackendOptions] = {}

    def operation_started(self, ctx: OperationContext) -> EventSink | None:
        if ctx.record.command == "job":
            self.of[ctx.record.args[0]] = ctx.options
        return None

    def operation_finished(self, ctx: OperationContext) -> None:
        return None


def two_job_config(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    (work / "w.bin").write_bytes(os.urandom(200_000))
    return make_config(tmp_path, extra=f'\n[jobs.work]\npaths = ["{work}"]\nrepository = "mirror"\n')


def test_concurrent_jobs_report_only_to_their_own_subscribers(tmp_path: Path) -> None:
    cfg = load(two_job_config(tmp_path))
    both_started = threading.Barrier(2)
    logs = {"home": JobLog(both_started), "work": JobLog(both_started)}
    limits = {"home": 1_000_000, "work": 2_000_000}
    options = Options()
    unwatch = RUNNING.watch(options)
    results: dict[str, str] = {}

    def run(job: str) -> None:
        ctx = OperationContext(BackendOptions(limit_upload_kib=limits[job]))
        ctx.events.subscribe(logs[job])
        [result] = run_service.run_jobs(cfg, [job], run_service.RunOptions(context=ctx))
        results[job] = result.status

    threads = [threading.Thread(target=run, args=(job,)) for job in logs]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        unwatch()
    assert results == {"home": "success", "work": "success"}
    for job, root in (("home", tmp_path / "src"), ("work", tmp_path / "work")):
        log = logs[job]
        assert log.jobs == {job} and log.kinds == ["start", "success"]
        assert log.files and all(p.startswith(os.fsencode(root) + b"/") for p in log.files)
        assert log.steps[0] == f"backup {cfg.jobs[job].repository}"
        assert options.of[job].limit_upload_kib == limits[job]  # each job kept its caller's options
    assert logs["home"].bytes >= 306_000 and logs["work"].bytes >= 200_000


def test_the_dashboard_shows_a_run_it_did_not_start(tmp_path: Path) -> None:
    cfg = load(make_config(tmp_path))
    changes: list[LiveRun] = []
    runner = Runner(cfg, changes.append)
    runner.watch(RUNNING)
    try:
        daemon = threading.Thread(target=run_service.run_jobs, args=(cfg, ["home"], run_service.RunOptions()))
        daemon.start()  # as the daemon serving the dashboard would
        daemon.join(120)
        live = runner.live["home"]
        assert live.status == "success" and live.ended is not None and live.phase == "finished"
        assert live.files == 2 and live.bytes == 306_000  # the backup step's, not the check's reads
        assert changes[0].job == "home" and changes[-1].status == "success"
        runner.start("home")  # its own run: reported once, not again through the registry
        runner.join(120)
        assert runner.live["home"] is not live and runner.live["home"].status == "success"
        assert runner.live["home"].files == 2
    finally:
        runner.close()


def test_a_dropped_dashboard_stops_watching(tmp_path: Path) -> None:
    cfg = load(make_config(tmp_path))
    registry = OperationRegistry()
    changes: list[LiveRun] = []
    runner = Runner(cfg, changes.append)
    runner.watch(registry)
    with registry.track(OperationContext().child("job", ["home"])):
        pass
    seen = len(changes)
    assert seen >= 2 and changes[-1].phase == "finished"  # told of the start and of the end
    del runner
    gc.collect()
    with registry.track(OperationContext().child("job", ["home"])):
        pass
    assert len(changes) == seen
