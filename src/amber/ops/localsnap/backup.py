"""The backup step of a job with ``snapshot = ...``: clean up, snapshot, back up from it, clean up.

Order: cleanup of leftovers -> database dumps (a job with ``databases``) -> pre_snapshot hooks ->
snapshots (the owner record first) -> post_snapshot hooks (also after a failed pre hook or snapshot;
a failing post hook removes the snapshot and fails the run) -> backup through a MappedSource
recording the original paths, tagged ``local-snapshot=<name>`` -> the owner record says ``kept``
with the repository snapshot ID -> cleanup down to ``snapshot_keep``. A failed backup removes its
snapshot at once.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from amber.errors import AmberError, HookFailed
from amber.ops.config.model import JobConfig
from amber.ops.localsnap.manager import ProviderFactory, for_job, run_hooks, system_providers
from amber.repository import Repository
from amber.services.backup import BackupOutcome, BackupRequest, backup_paths
from amber.sources.databases.backup import backup_databases
from amber.sources.local import LocalSnapshots, Taken
from amber.sources.naming import new_name

TAG = "local-snapshot="


def backup_from_snapshot(
    job: JobConfig,
    state_dir: str,
    req: BackupRequest,
    open_repo: Callable[[], AbstractContextManager[Repository]],
    note: Callable[[str], None],
    providers: ProviderFactory = system_providers,
) -> tuple[BackupOutcome, str, list[str]]:
    """Back up ``req`` from fresh snapshots of the job's paths: (outcome, local snapshot name, notes)."""
    local: LocalSnapshots = for_job(job, state_dir, providers)
    plan = local.plan(list(req.paths))
    notes = plan.notes()
    removed, problems = local.cleanup(plan, job.name)
    notes += [f"removed old local snapshot {n}" for n in removed] + problems
    name = str(new_name(job.name))
    env = {"AMBER_JOB": job.name, "AMBER_LOCAL_SNAPSHOT": name}
    held: list[Taken] = []

    def snapshot() -> None:
        """Hooks and snapshots; the backup request then reads from them."""
        try:
            run_hooks(job.hooks.pre_snapshot, "pre_snapshot", env, note)
            taken = local.take(plan, name, job.name)
        except BaseException:
            try:  # thaw what a pre_snapshot hook may have frozen; the first failure is the one reported
                run_hooks(job.hooks.post_snapshot, "post_snapshot", env, note)
            except HookFailed as exc:
                note(exc.message)
            raise
        try:
            run_hooks(job.hooks.post_snapshot, "post_snapshot", env, note)
        except BaseException:
            local.release(taken)  # a failed run never leaves a snapshot its (maybe long-lived) process owns
            raise
        held.append(taken)
        req.source = taken.source()
        req.excludes = [*req.excludes, *taken.excludes()]
        req.tags = [*req.tags, TAG + name]

    try:
        if not job.databases:
            snapshot()
        with open_repo() as repo:
            if job.databases:  # dumps first, then the snapshot, all in one repository snapshot
                outcome = backup_databases(repo, req, job.databases, before_paths=snapshot)
            else:
                outcome = backup_paths(repo, req)
            repository_id = repo.id
    except BaseException:
        for taken in held:
            notes += local.release(taken)
        raise
    record = local.owners.get(name)
    if record is not None:
        record.state, record.repository_snapshot, record.repository = (
            "kept",
            outcome.snapshot_id,
            repository_id,
        )
        local.owners.save(record)
    try:
        removed, problems = local.cleanup(plan, job.name)
    except AmberError as exc:
        problems = [exc.message]
        removed = []
    notes += [f"removed old local snapshot {n}" for n in removed if n != name] + problems
    if name in removed:
        notes.append(f"local snapshot {name} removed after the backup (snapshot_keep = {job.snapshot_keep})")
    return outcome, name, notes
