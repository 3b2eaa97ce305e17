"""`amber run` on real repositories: the pipeline, hooks, state records, locks, exit codes."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from amber.errors import CheckFailed, HookFailed, JobRunning
from amber.events import RunEvent, Subscriber
from amber.ops.config.model import Config, parse_config
from amber.ops.limits import Limits
from amber.ops.run import job as run_service
from amber.ops.state import StateDB, job_lock
from amber.services import session
from amber.services.context import OperationContext
from amber.storage import open_backend
from amber.storage.base import FileType
from tests.conftest import PASSWORD, AmberCli


class Recorder(Subscriber):
    def __init__(self) -> None:
        self.events: list[RunEvent] = []

    def run_event(self, event: RunEvent) -> None:
        self.events.append(event)


class Notes(Subscriber):
    """The "note" notices (each step's result, hooks, watcher lines) as a list of lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def notice(self, kind: str, message: str) -> None:
        if kind == "note":
            self.lines.append(message)


def noted(notes: Notes, **options: Any) -> run_service.RunOptions:
    """Run options whose operation's sink collects its notes in ``notes``."""
    ctx = OperationContext()
    ctx.events.subscribe(notes)
    return run_service.RunOptions(context=ctx, **options)


def observed(recorder: Recorder, **options: Any) -> run_service.RunOptions:
    """Run options whose operation's sink has ``recorder`` subscribed."""
    ctx = OperationContext()
    ctx.events.subscribe(recorder)
    return run_service.RunOptions(context=ctx, **options)


def make_config(tmp: Path, extra_job: str = "", mirrors: str = "[]", extra: str = "") -> Path:
    (tmp / "pass").write_text(PASSWORD + "\n")
    src = tmp / "src"
    (src / "sub").mkdir(parents=True, exist_ok=True)
    (src / "a.txt").write_text("alpha\n" * 1000)
    (src / "sub" / "b.bin").write_bytes(os.urandom(300_000))
    for name in ("main", "mirror"):
        if not (tmp / name).exists():
            session.create(str(tmp / name), PASSWORD.encode()).close()
    cfg = tmp / "config.toml"
    cfg.write_text(f"""
[repositories.main]
url = "{tmp / 'main'}"
password_file = "{tmp / 'pass'}"

[repositories.mirror]
url = "{tmp / 'mirror'}"
password_file = "{tmp / 'pass'}"

[repositories.usb]
url = "{tmp / 'absent-usb'}"
password_file = "{tmp / 'pass'}"
offline = true

[repositories.gone]
url = "{tmp / 'absent-nas'}"
password_file = "{tmp / 'pass'}"

[jobs.home]
paths = ["{src}"]
repository = "main"
mirrors = {mirrors}
check = {{ read_data_subset = "100%" }}
{extra_job}

[state]
path = "{tmp / 'state' / 'state.db'}"
audit_log = "{tmp / 'state' / 'audit.log'}"
{extra}
""")
    return cfg


def load(path: Path) -> Config:
    return parse_config(path.read_text(), str(path))


def snapshot_count(location: Path) -> int:
    return len(list(open_backend(str(location)).list(FileType.SNAPSHOT)))


def test_successful_run_records_everything(tmp_path: Path) -> None:
    log = tmp_path / "hooks.log"
    hooks = (f'hooks = {{ before = ["echo before $AMBER_JOB >> {log}"], '
             f'after = ["echo after $AMBER_STATUS $AMBER_SNAPSHOT >> {log}"] }}')
    cfg = load(make_config(tmp_path, hooks))
    recorder = Recorder()
    results = run_service.run_jobs(cfg, ["home"], observed(recorder))
    assert [r.status for r in results] == ["success"]
    assert run_service.worst_error(results) is None
    record = StateDB(cfg.state.path).runs("home")[0]
    assert record.status == "success" and record.ended and record.ended >= record.started
    assert record.files == 2 and record.bytes_added > 0 and len(record.snapshot_ids) == 1
    assert [(d.step, d.name, d.status) for d in record.destinations] == [
        ("backup", "main", "success"), ("check", "main", "success")]
    assert snapshot_count(tmp_path / "main") == 1
    lines = log.read_text().splitlines()
    assert lines == ["before home", f"after success {record.snapshot_ids[0]}"]
    assert [e.kind for e in recorder.events] == ["start", "success"]
    assert recorder.events[-1].details["snapshot_ids"] == record.snapshot_ids


def test_failing_before_hook_backs_up_nothing_and_runs_on_failure(tmp_path: Path) -> None:
    log = tmp_path / "hooks.log"
    cfg = load(make_config(tmp_path, f'hooks = {{ before = ["exit 3"], after = ["echo after >> {log}"], '
                                     f'on_failure = ["echo failed $AMBER_ERROR >> {log}"] }}'))  # fmt: skip
    recorder = Recorder()
    results = run_service.run_jobs(cfg, [], observed(recorder))
    assert results[0].status == "failed"
    error = run_service.worst_error(results)
    assert isinstance(error, HookFailed) and error.exit_code == 27
    assert snapshot_count(tmp_path / "main") == 0
    assert log.read_text() == "failed before hook 'exit 3' exited with status 3\n"
    assert recorder.events[-1].kind == "failure"
    assert StateDB(cfg.state.path).last("home").status == "failed"  # type: ignore[union-attr]


def test_offline_mirror_is_skipped_and_missing_mirror_fails(tmp_path: Path) -> None:
    cfg = load(make_config(tmp_path, mirrors='["mirror", "usb", "gone"]'))
    results = run_service.run_jobs(cfg, ["home"], run_service.RunOptions())
    record = results[0].record
    assert record is not None
    steps = {(d.step, d.name): d.status for d in record.destinations}
    assert steps[("backup", "main")] == "success"
    assert steps[("copy", "usb")] == "skipped"
    assert steps[("copy", "gone")] == "failed"
    assert steps[("copy", "mirror")] == "success"
    assert steps[("check", "mirror")] == "success"
    assert ("check", "gone") not in steps
    assert record.status == "failed" and snapshot_count(tmp_path / "mirror") == 1
    assert results[0].error is not None and "gone" in results[0].error.message


def test_damaged_pack_raises_integrity_event(tmp_path: Path) -> None:
    cfg = load(make_config(tmp_path))
    run_service.run_jobs(cfg, ["home"], run_service.RunOptions())
    packs = sorted((tmp_path / "main" / "data").rglob("*"))
    victim = max((p for p in packs if p.is_file()), key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.chmod(0o644)
    victim.write_bytes(bytes(data))
    recorder = Recorder()
    results = run_service.run_jobs(cfg, ["home"], observed(recorder))
    assert results[0].status == "failed"
    assert isinstance(run_service.worst_error(results), CheckFailed)
    kinds = [e.kind for e in recorder.events]
    assert kinds == ["start", "integrity", "failure"]
    assert recorder.events[1].repository == "main"


def test_runs_of_one_job_never_overlap(tmp_path: Path) -> None:
    cfg = load(make_config(tmp_path))
    with job_lock(cfg.state_dir, "home"):
        results = run_service.run_jobs(cfg, ["home"], run_service.RunOptions())
    assert results[0].status == "running"
    assert isinstance(run_service.worst_error(results), JobRunning)
    assert snapshot_count(tmp_path / "main") == 0


def test_cli_second_run_exits_with_distinct_code(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    cli = AmberCli(tmp_path / "main", tmp_path)
    with job_lock(str(tmp_path / "state"), "home"):
        result = cli.run("--config", str(cfg), "run", "home", check=False)
    assert result.returncode == 22
    assert "job home is already running" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 2  # the note and the one-line error
    ok = cli.run("--config", str(cfg), "run", "--json")
    assert '"status": "success"' in ok.stdout


def test_interrupted_run_is_marked_failed_on_next_begin(tmp_path: Path) -> None:
    db = StateDB(str(tmp_path / "s.db"))
    first = db.begin("home")
    db.begin("home")
    rows = sqlite3.connect(tmp_path / "s.db").execute("SELECT id, status FROM runs ORDER BY id").fetchall()
    assert rows == [(first.id, "failed"), (first.id + 1, "running")]


def test_unknown_job_is_a_config_error(tmp_path: Path) -> None:
    cfg = load(make_config(tmp_path))
    with pytest.raises(Exception, match="no job named 'nope'"):
        run_service.run_jobs(cfg, ["nope"], run_service.RunOptions())


def test_retention_forgets_and_prunes_on_primary_and_mirrors(tmp_path: Path) -> None:
    extra = '\n[retention.one]\nkeep_last = 1\n'
    cfg = load(make_config(tmp_path, 'retention = "one"\ntags = ["home"]', mirrors='["mirror"]', extra=extra))
    for round_ in range(3):
        (tmp_path / "src" / f"new{round_}.txt").write_bytes(os.urandom(50_000))
        results = run_service.run_jobs(cfg, ["home"], run_service.RunOptions())
        assert results[0].status == "success", results[0].record
    record = results[0].record
    assert record is not None
    steps = {(d.step, d.name): d for d in record.destinations}
    assert steps[("retention", "main")].details["forgotten"] == 1
    assert steps[("retention", "mirror")].details["forgotten"] == 1
    assert snapshot_count(tmp_path / "main") == 1 and snapshot_count(tmp_path / "mirror") == 1
    assert steps[("check", "mirror")].status == "success"  # pruned mirror still checks clean


def test_bandwidth_limits_from_config_reach_the_backend_wrappers(tmp_path: Path) -> None:
    from amber.ops.run.steps import Repositories
    from amber.services.context import OperationContext
    from amber.storage.ratelimit import RateLimitedBackend
    from amber.storage.url import BackendOptions, find_layer

    cfg = load(make_config(tmp_path, extra="\n[limits]\nlimit_upload = 4096\nlimit_download = 8192\n"))
    options = run_service.RunOptions(limits=Limits.from_config(cfg.limits))
    assert run_service.run_jobs(cfg, ["home"], options)[0].status == "success"
    opts = run_service.job_options(options)
    assert (opts.limit_upload_kib, opts.limit_download_kib) == (4096, 8192)
    assert options.context.options == BackendOptions()  # nothing process-wide changed
    repos = Repositories(cfg, session.PasswordSource(), OperationContext(opts))
    with repos.open("main") as repo:
        found = find_layer(repo.backend, RateLimitedBackend)
        assert found is not None and found.upload is not None and found.upload.rate == 4096 * 1024
    cli = OperationContext(BackendOptions(limit_upload_kib=100))
    given = run_service.RunOptions(limits=Limits.from_config(cfg.limits), context=cli)
    assert run_service.job_options(given).limit_upload_kib == 100  # the command line wins
