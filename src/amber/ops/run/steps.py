"""The steps of one `amber run` job, each on one repository: backup, copy, retention, Object Lock
extension, check.

Each step returns a :class:`Destination` result instead of raising, so one
broken mirror never hides what happened on the others. Repositories are
opened per step, with the lock that step needs (a watcher keeps those of the
backup and the copy open between its runs: ``Repositories.open_working``).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from amber import catalog
from amber.anomaly.scoring import assess
from amber.engine.changedpaths import ChangedPaths
from amber.engine.patterns import read_exclude_files
from amber.errors import AmberError, CheckFailed, IntegrityError
from amber.ops.config.model import Config, JobConfig, RepositoryConfig
from amber.ops.config.repos import backend_options, config_passwords
from amber.ops.limits import Limits
from amber.ops.localsnap.backup import backup_from_snapshot
from amber.ops.state import Destination
from amber.repository import Repository
from amber.services import backup as backup_service
from amber.services import check as check_service
from amber.services import copy as copy_service
from amber.services import forget as forget_service
from amber.services import object_lock as object_lock_service
from amber.services import prune as prune_service
from amber.services import session
from amber.services.context import OperationContext
from amber.services.snapshots import SnapshotFilter
from amber.sources.databases.backup import backup_databases
from amber.storage.url import BackendOptions


class Repositories:
    """Opens the config's named repositories with their own password sources, for one operation."""

    def __init__(
        self, config: Config, fallback: session.PasswordSource, ctx: OperationContext | None = None
    ) -> None:
        self.config = config
        self.fallback = fallback
        self.ctx = ctx or OperationContext()

    def settings(self, name: str) -> RepositoryConfig:
        return self.config.repositories[name]

    def passwords(self, name: str) -> session.PasswordSource:
        return config_passwords(self.settings(name), self.fallback)

    def options(self, name: str) -> BackendOptions:
        """The operation's backend options with the repository's own from the config."""
        return backend_options(self.settings(name), self.ctx.options)

    def present(self, name: str) -> bool:
        try:
            return session.exists(self.settings(name).url, self.options(name))
        except AmberError:
            return False

    def object_locked(self, name: str) -> bool:
        """True when new objects of ``name`` get S3 Object Lock retention (to be extended)."""
        return bool(self.options(name).extra.get("s3.lock-mode"))

    @contextmanager
    def open(self, name: str, exclusive: bool = False, lock: bool = True) -> Iterator[Repository]:
        url, passwords, options = self.settings(name).url, self.passwords(name), self.options(name)
        with session.opened(url, passwords, lock, exclusive, options, ctx=self.ctx) as repo:
            yield repo
            # The catalog is a cache: a problem with it is never a failed step.
            catalog.refresh(repo, self.config.catalog.enabled)

    def open_unlocked(self, name: str) -> contextlib.AbstractContextManager[Repository]:
        """``name`` with neither a lock nor its index, to write a small record (the fleet's);
        a watcher's kept one when it has it open."""
        return session.opened(self.settings(name).url, self.passwords(name), lock=False,
                              options=self.options(name), ctx=self.ctx, load_index=False)  # fmt: skip

    def open_working(self, name: str) -> contextlib.AbstractContextManager[Repository]:
        """``name`` for a backup, or either side of a copy, under a shared lock. Opened for the
        step here; a watcher's repositories keep it open across runs (ops/watch/kept.py)."""
        return self.open(name)


def _failed(name: str, step: str, exc: AmberError) -> Destination:
    return Destination(
        name, step, "failed", exc.message, details={"exit_code": exc.exit_code, "error": type(exc).__name__}
    )


@dataclass(frozen=True)
class Since:
    """The parent snapshot a backup starts from (None: the usual choice) and, from `amber watch`,
    what changed since it."""

    parent: str | None = None
    changes: ChangedPaths | None = None


def backup(
    repos: Repositories, job: JobConfig, limits: Limits, note: Callable[[str], None] = lambda _m: None,
    since: Since | None = None,
) -> tuple[Destination, AmberError | None]:  # fmt: skip
    """The backup step; its progress goes to the operation's sink (the opened repository carries it)."""
    since = since or Since()
    req = backup_service.BackupRequest(
        paths=list(job.paths),
        excludes=list(job.exclude) + read_exclude_files(job.exclude_files),
        exclude_caches=job.exclude_caches,
        one_file_system=job.one_file_system,
        tags=list(job.tags),
        host=job.host,
        stdin_filename=job.stdin_filename,
        workers=limits.workers,
        assess=lambda facts: assess(facts, job.anomaly),
        parent=since.parent,
        changes=since.changes,
    )
    local: dict[str, Any] = {}
    try:
        if job.snapshot:
            outcome, name, notes = backup_from_snapshot(job, repos.config.state_dir, req,
                                                        lambda: repos.open(job.repository), note)  # fmt: skip
            local = {"local_snapshot": name, "notes": notes}
            for line in notes:
                note(f"{job.name}: {line}")
        else:
            with repos.open_working(job.repository) as repo:
                if job.stdin_command:
                    outcome = backup_service.backup_command(repo, req, list(job.stdin_command))
                elif job.databases:
                    outcome = backup_databases(repo, req, job.databases)
                else:
                    outcome = backup_service.backup_paths(repo, req)
    except AmberError as exc:
        return _failed(job.repository, "backup", exc), exc
    snap = outcome.snapshot
    s = snap.summary
    details = {
        "files": s.total_files, "bytes": s.total_bytes, "files_new": s.files_new,
        "files_changed": s.files_changed, "data_added": s.data_added,
        "data_added_stored": s.data_added_stored, "duration": s.duration_s,
        "skipped": list(snap.skipped), "files_read": outcome.result.files_read, **local,
    }  # fmt: skip
    if outcome.result.notes:
        details["notes"] = list(outcome.result.notes)
    if s.anomaly is not None:
        a = s.anomaly
        details["anomaly"] = {"verdict": a.verdict, "reasons": list(a.reasons), "top_dirs": list(a.top_dirs),
                              "examples": list(a.examples)}  # fmt: skip
    if snap.partial:
        message = f"{len(snap.skipped)} item(s) could not be read"
        return Destination(job.repository, "backup", "partial", message, outcome.snapshot_id, details), None
    return Destination(job.repository, "backup", "success", "", outcome.snapshot_id, details), None


def copy(repos: Repositories, job: JobConfig, mirror: str, snapshot_id: str) -> Destination:
    try:
        with repos.open_working(job.repository) as src, repos.open_working(mirror) as dst:
            result = copy_service.copy_snapshots(src, dst, [snapshot_id])
    except AmberError as exc:
        return _failed(mirror, "copy", exc)
    details: dict[str, Any] = {"copied": len(result.copied), "already": result.already,
                               "bytes_added": result.stats.bytes_added}  # fmt: skip
    if result.failed:
        details |= {"error": "IntegrityError", "exit_code": IntegrityError.exit_code}
        return Destination(mirror, "copy", "failed", result.failed[0][1], "", details)
    new_id = result.copied[0][1] if result.copied else ""
    if result.copied:
        details["source"] = result.copied[0][0]
    return Destination(mirror, "copy", "success", "", new_id, details)


def job_filter(job: JobConfig) -> SnapshotFilter:
    """The snapshots a job's retention policy may touch: its host, and its tags when it has some."""
    tags = [",".join(job.tags)] if job.tags else []
    return SnapshotFilter(hosts=[job.host or socket.gethostname()], tags=tags)


def retention(repos: Repositories, job: JobConfig, name: str) -> Destination:
    if repos.settings(name).immutable:
        return Destination(name, "retention", "skipped", "immutable repository: nothing is deleted")
    assert job.retention is not None
    req = forget_service.ForgetRequest(
        policy=forget_service.policy_from(repos.config.retention[job.retention]),
        filter=job_filter(job),
        prune=prune_service.PruneOptions(),
        hold_clean=job.anomaly.hold_clean,
    )
    try:
        with repos.open(name, lock=False) as repo:  # forget and prune take the locks they need
            result = forget_service.forget(repo, req)
    except AmberError as exc:
        return _failed(name, "retention", exc)
    details: dict[str, Any] = {"forgotten": len(result.removed)}
    if result.pruned is not None:
        details["prune"] = _as_details(result.pruned)
    return Destination(name, "retention", "success", "", "", details)


def extend_retention(repos: Repositories, name: str) -> Destination:
    """Push Object Lock retention on everything the kept snapshots still use (after forget/prune)."""
    try:
        with repos.open(name) as repo:
            result = object_lock_service.extend_retention(repo)
    except AmberError as exc:
        return _failed(name, "object-lock", exc)
    details = {"until": result.until.isoformat(), "objects": result.objects, "extended": result.extended,
               "packs": result.packs}  # fmt: skip
    return Destination(name, "object-lock", "success", "", "", details)


def check(repos: Repositories, job: JobConfig, name: str) -> Destination:
    try:
        with repos.open(name) as repo:
            report = check_service.check(repo, read_data=False, subset=job.check.read_data_subset)
    except AmberError as exc:
        return _failed(name, "check", exc)
    details = {"snapshots": report.snapshots, "packs": report.packs, "packs_read": report.packs_read,
               "errors": list(report.errors[:20])}  # fmt: skip
    if not report.ok:
        failure = CheckFailed(f"check found {len(report.errors)} error(s): {report.errors[0]}")
        details |= {"exit_code": failure.exit_code, "error": "CheckFailed"}
        return Destination(name, "check", "failed", failure.message, "", details)
    return Destination(name, "check", "success", "", "", details)


def _as_details(result: object) -> dict[str, Any]:
    if isinstance(result, dict):
        return result
    fields = getattr(result, "__dict__", None)
    if isinstance(fields, dict):
        return {k: v for k, v in fields.items() if isinstance(v, int | float | str | bool)}
    return {}
