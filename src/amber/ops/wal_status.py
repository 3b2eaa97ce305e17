"""The PostgreSQL WAL archive of configured repositories: what `amber pg list` shows, for the dashboard.

:func:`has_wal` asks the storage alone whether ``wal/`` holds anything (no
password, no key derivation), so the dashboard can tell cheaply which
repositories to open. :func:`wal_status` opens one repository read-only,
without a lock (one retry, 15 s per request), and summarises it per cluster
with :func:`summarize`, the same shape as ``amber pg list --json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from amber.errors import AmberError
from amber.ops.config.model import Config
from amber.ops.run.fleet import GLANCE, unlocated
from amber.ops.run.steps import Repositories
from amber.redact import redact
from amber.services import session, wal
from amber.services.context import OperationContext
from amber.storage.base import FileType
from amber.storage.url import open_backend


def info_dict(info: wal.BaseInfo) -> dict[str, Any]:
    return {"cluster": info.cluster, "timeline": info.timeline, "start_lsn": info.start_lsn,
            "stop_lsn": info.stop_lsn, "start_segment": info.start_segment, "stop_segment": info.stop_segment,
            "start_time": info.start_time, "stop_time": info.stop_time}  # fmt: skip


def summarize(bases: list[wal.BaseBackup], archived: dict[str, wal.ClusterWal]) -> list[dict[str, Any]]:
    """Per cluster (by name): its base backups, the WAL archived (count, bytes, first and last
    segment) and the segment positions missing after the oldest base backup."""
    report = []
    for cluster in sorted({b.info.cluster for b in bases} | set(archived)):
        mine = [b for b in bases if b.info.cluster == cluster]
        entry = archived.get(cluster, wal.ClusterWal())
        segments = sorted(n.file for n in entry.names if n.kind in ("segment", "partial"))
        report.append({
            "cluster": cluster,
            "base_backups": [{"snapshot": b.snapshot_id, "time": b.snapshot.time, **info_dict(b.info)}
                             for b in mine],
            "wal_files": len(entry.names),
            "wal_bytes": sum(entry.files.values()),
            "first_segment": segments[0] if segments else "",
            "last_segment": segments[-1] if segments else "",
            "gaps": wal.gaps(entry, mine),
        })  # fmt: skip
    return report


def _repositories(config: Config, passwords: session.PasswordSource) -> Repositories:
    return Repositories(config, passwords, OperationContext(GLANCE))


def has_wal(config: Config, name: str) -> bool:
    """True when the repository's ``wal/`` holds an object; False also when it cannot be listed."""
    repos = _repositories(config, session.PasswordSource())
    try:
        backend = open_backend(config.repositories[name].url, repos.ctx.backend_options(repos.options(name)))
        try:
            return next(iter(backend.list(FileType.WAL)), None) is not None
        finally:
            backend.close()
    except AmberError:  # absent, offline, no wal/ yet: nothing to show
        return False


def with_wal(config: Config) -> list[str]:
    return [name for name in sorted(config.repositories) if has_wal(config, name)]


@dataclass
class WalStatus:
    repository: str
    clusters: list[dict[str, Any]] = field(default_factory=list)  # summarize()'s shape
    problems: list[str] = field(default_factory=list)


def wal_status(config: Config, name: str, passwords: session.PasswordSource) -> WalStatus:
    repos = _repositories(config, passwords)
    settings = config.repositories[name]
    status = WalStatus(name)
    unreadable: list[str] = []
    try:
        with session.opened(settings.url, repos.passwords(name), lock=False, options=repos.options(name),
                            ctx=repos.ctx, read_only=True, load_index=False) as repo:  # fmt: skip
            bases = wal.base_backups(repo, unreadable=unreadable)
            archived = wal.archived(repo)
    except AmberError as exc:
        status.problems.append(unlocated(exc.message, settings.url, name))
        return status
    status.clusters = summarize(bases, archived)
    status.problems += [f"base backup {redact(u)}" for u in unreadable]
    return status
