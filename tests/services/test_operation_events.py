"""A service called with an operation context reports to that context's sink, and the process's
registry of running operations lets a front end watch operations it did not start."""

from __future__ import annotations

import os
from pathlib import Path

from amber.events import EventSink, RunEvent, Subscriber
from amber.repository import Repository
from amber.services import backup as backup_service
from amber.services import restore as restore_service
from amber.services import session
from amber.services.context import OperationContext, OperationRecord
from amber.services.operations import OperationRegistry
from tests.conftest import PASSWORD

PASSWORDS = session.PasswordSource(password_command=f"echo '{PASSWORD}'")


class Counts(Subscriber):
    def __init__(self) -> None:
        self.files: list[bytes] = []
        self.bytes = 0
        self.notices: list[tuple[str, str]] = []
        self.runs: list[str] = []

    def file_done(self, path: bytes, size: int, status: str) -> None:
        self.files.append(path)

    def bytes_done(self, n: int) -> None:
        self.bytes += n

    def notice(self, kind: str, message: str) -> None:
        self.notices.append((kind, message))

    def run_event(self, event: RunEvent) -> None:
        self.runs.append(event.kind)


def test_backup_and_restore_report_progress_to_the_context_sink_with_no_wiring(
    repo: Repository, repo_path: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "one").write_bytes(os.urandom(5000))
    (src / "two").write_bytes(b"x" * 3000)
    ctx, other = OperationContext(), OperationContext()
    seen, elsewhere = Counts(), Counts()
    ctx.events.subscribe(seen)
    other.events.subscribe(elsewhere)
    with session.opened(str(repo_path), PASSWORDS, ctx=ctx) as opened:
        outcome = backup_service.backup_paths(opened, backup_service.BackupRequest(paths=[str(src)]))
    assert sorted(os.path.basename(p) for p in seen.files) == [b"one", b"two"]
    assert seen.bytes == 8000
    with session.opened(str(repo_path), PASSWORDS, ctx=ctx) as opened:
        req = restore_service.RestoreRequest(outcome.snapshot_id, str(tmp_path / "t"))
        restore_service.restore(opened, req)
    assert len(seen.files) == 4
    assert elsewhere.files == [] and elsewhere.bytes == 0  # another operation hears nothing


class Watcher:
    """What a dashboard does: a sink per job it is told of, and the end of each."""

    def __init__(self) -> None:
        self.sinks: dict[str, Counts] = {}
        self.finished: list[str] = []

    def operation_started(self, ctx: OperationContext) -> EventSink | None:
        if ctx.record.command != "job":
            return None
        if ctx.record.args[0] == "explode":
            raise RuntimeError("dashboard bug")
        return self.sinks.setdefault(ctx.record.args[0], Counts())

    def operation_finished(self, ctx: OperationContext) -> None:
        self.finished.append(ctx.record.args[0])


def test_a_watcher_hears_running_and_later_operations_until_it_stops() -> None:
    registry = OperationRegistry()
    root = OperationContext()
    early = root.child("job", ["early"])
    later = root.child("job", ["later"])
    command = OperationContext(record=OperationRecord("backup"))
    watcher = Watcher()
    with registry.track(early), registry.track(command):
        unwatch = registry.watch(watcher)  # early was running already
        assert registry.running == [early, command]
        with registry.track(later):
            later.events.bytes_done(5)
            early.events.bytes_done(1)
        assert watcher.finished == ["later"]
        unwatch()
        early.events.bytes_done(100)  # no longer watched
    assert watcher.sinks["early"].bytes == 1 and watcher.sinks["later"].bytes == 5
    assert set(watcher.sinks) == {"early", "later"}  # the plain command was left alone
    assert watcher.finished == ["later"] and registry.running == []


def test_a_failing_watcher_is_a_notice_to_the_operation_not_an_error() -> None:
    registry = OperationRegistry()
    registry.watch(Watcher())
    ctx = OperationContext().child("job", ["explode"])
    seen = Counts()
    ctx.events.subscribe(seen)
    with registry.track(ctx):
        ctx.events.run_event(RunEvent("start", "explode"))
    assert seen.runs == ["start"]
    assert seen.notices == [("subscriber", "Watcher: RuntimeError: dashboard bug")]
