"""`amber local-snapshots`: list a job's local snapshots, clean them up, verify one against the repository."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from amber.errors import LocalSnapshotError
from amber.ops.config.model import Config, JobConfig
from amber.ops.localsnap.manager import ProviderFactory, for_job, snapshot_jobs, system_providers
from amber.ops.run.steps import Repositories
from amber.services import session
from amber.sources.local import LocalSnapshots, Plan
from amber.sources.model import SnapshotProvider, VolumeSnapshot
from amber.sources.naming import parse_name
from amber.sources.verify import VerifyReport, backed_up_as, verify


@dataclass
class Entry:
    name: str
    job: str
    kind: str
    filesystems: list[str]
    created: str
    size: int | None
    repository_snapshot: str
    state: str  # kept | running | leftover | pre-rollback
    paths: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _state(local: LocalSnapshots, name: str) -> tuple[str, str]:
    parsed, record = parse_name(name), local.owners.get(name)
    if parsed is not None and parsed.pre_rollback:
        return "pre-rollback", ""
    if record is None:
        return "leftover", ""
    if record.state == "running":
        return ("running" if record.alive() else "leftover"), ""
    return record.state, record.repository_snapshot


def job_snapshots(
    job: JobConfig,
    state_dir: str,
    providers: ProviderFactory = system_providers,
) -> tuple[LocalSnapshots, Plan, dict[str, list[tuple[SnapshotProvider, VolumeSnapshot]]]]:
    local = for_job(job, state_dir, providers)
    plan = local.plan(list(job.paths))
    groups = {n: p for n, p in local.existing(plan).items() if (x := parse_name(n)) and x.job == job.name}
    return local, plan, groups


def entries(
    config: Config, job_name: str | None, providers: ProviderFactory = system_providers
) -> list[Entry]:
    found = []
    for job in snapshot_jobs(config, job_name):
        local, _, groups = job_snapshots(job, config.state_dir, providers)
        for name, parts in groups.items():
            parsed = parse_name(name)
            sizes = [s.size for _, s in parts]
            state, repo_snap = _state(local, name)
            found.append(
                Entry(
                    name,
                    job.name,
                    parts[0][1].volume.kind,
                    [s.volume.mountpoint for _, s in parts],
                    parsed.created.isoformat() if parsed else "",
                    None if any(x is None for x in sizes) else sum(x for x in sizes if x is not None),
                    repo_snap,
                    state,
                    [s.path for _, s in parts],
                )
            )
    return found


def cleanup(config: Config, job_name: str | None, providers: ProviderFactory = system_providers) -> list[str]:
    removed: list[str] = []
    problems: list[str] = []
    for job in snapshot_jobs(config, job_name):
        local = for_job(job, config.state_dir, providers)
        done, failed = local.cleanup(local.plan(list(job.paths)), job.name)
        removed += done
        problems += failed
    if problems:
        raise LocalSnapshotError(f"{len(problems)} snapshot(s) could not be removed: {problems[0]}")
    return removed


def find(
    config: Config,
    name: str,
    providers: ProviderFactory = system_providers,
) -> tuple[JobConfig, LocalSnapshots, list[VolumeSnapshot]]:
    parsed = parse_name(name)
    if parsed is None:
        raise LocalSnapshotError(f"{name} is not an amber local snapshot name (amber-<job>-<time>)")
    job = config.job(parsed.job)
    local, _, groups = job_snapshots(job, config.state_dir, providers)
    if name not in groups:
        raise LocalSnapshotError(f"no local snapshot named {name} on the filesystems of job {job.name}")
    return job, local, [s for _, s in groups[name]]


def verify_local(
    config: Config,
    name: str,
    passwords: session.PasswordSource,
    providers: ProviderFactory = system_providers,
) -> VerifyReport:
    job, local, parts = find(config, name, providers)
    record = local.owners.get(name)
    with Repositories(config, passwords).open(job.repository) as repo:
        snapshot_id = (record.repository_snapshot if record else "") or backed_up_as(repo, name)
        if not snapshot_id:
            raise LocalSnapshotError(
                f"{name} was never backed up to repository {job.repository}: nothing to verify against"
            )
        return verify(repo, snapshot_id, parts)
