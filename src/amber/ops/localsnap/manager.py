"""Builds a job's :class:`~amber.sources.local.LocalSnapshots` from the config, and runs snapshot hooks."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence

from amber.childenv import child_env
from amber.errors import HookFailed, RollbackRefused, UsageError
from amber.ops.config.model import Config, JobConfig
from amber.sources.btrfs import BtrfsProvider
from amber.sources.local import LocalSnapshots, Settings
from amber.sources.lvm import LvmProvider
from amber.sources.model import SnapshotProvider
from amber.sources.owners import Owners
from amber.sources.zfs import ZfsProvider

ProviderFactory = Callable[[], Mapping[str, SnapshotProvider]]


def system_providers() -> dict[str, SnapshotProvider]:
    return {"btrfs": BtrfsProvider(), "zfs": ZfsProvider(), "lvm": LvmProvider()}


def owners_dir(state_dir: str) -> str:
    return os.path.join(state_dir, "local-snapshots")


def for_job(job: JobConfig, state_dir: str, providers: ProviderFactory = system_providers) -> LocalSnapshots:
    if not job.snapshot:
        raise UsageError(f'job {job.name} has no filesystem snapshots (set snapshot = "btrfs" or similar)')
    settings = Settings(job.snapshot, job.snapshot_keep, job.snapshot_dir)
    return LocalSnapshots(providers(), Owners(owners_dir(state_dir)), settings)


def snapshot_jobs(config: Config, name: str | None) -> list[JobConfig]:
    jobs = [config.job(name)] if name else [j for j in config.jobs.values() if j.snapshot]
    for job in jobs:
        if not job.snapshot:
            raise UsageError(
                f'job {job.name} has no filesystem snapshots (set snapshot = "btrfs" or similar)'
            )
    return jobs


def run_hooks(
    commands: Sequence[str], phase: str, env: Mapping[str, str], note: Callable[[str], None]
) -> None:
    for command in commands:
        note(f"{phase} hook: {command}")
        try:
            code = subprocess.run(
                command, shell=True, env=child_env({**env, "AMBER_HOOK": phase}), stdout=2, check=False
            ).returncode
        except OSError as exc:
            raise HookFailed(f"{phase} hook {command!r} could not start: {exc.strerror}") from exc
        if code != 0:
            raise HookFailed(f"{phase} hook {command!r} exited with status {code}")


def require_yes(yes: bool) -> None:
    """A rollback replaces live data: it runs only with --yes (--dry-run shows its plan)."""
    if not yes:
        raise RollbackRefused(
            "rollback replaces live data: give --yes to do it, or --dry-run to see the plan"
        )


@contextlib.contextmanager
def services_stopped(stop: Sequence[str], start: Sequence[str], job: str, snapshot: str,
                     note: Callable[[str], None]) -> Iterator[None]:  # fmt: skip
    """The job's stop hooks, the block, then its start hooks (also when the block fails)."""
    env = {"AMBER_JOB": job, "AMBER_LOCAL_SNAPSHOT": snapshot}
    run_hooks(stop, "stop", env, note)
    try:
        yield
    finally:
        run_hooks(start, "start", env, note)
