"""`amber rollback JOB`: back to a local snapshot (Btrfs swap, ZFS rollback, LVM merge) or a repository one.

``--from-repo`` restores the repository snapshot into fresh volumes beside
the live ones (named like a run's snapshot, with an owner record, so a crash
leaves only what cleanup removes), verifies every file's SHA-256 while
restoring, and only then swaps: a failed restore never touches the live tree.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

from amber.errors import LocalSnapshotError, RollbackRefused, UsageError
from amber.ops.config.model import Config
from amber.ops.localsnap.from_repo import from_repo
from amber.ops.localsnap.from_repo_zfs import run_swap, undo_plan
from amber.ops.localsnap.inventory import job_snapshots
from amber.ops.localsnap.manager import ProviderFactory, require_yes, services_stopped, system_providers
from amber.ops.localsnap.requests import RollbackRequest, RollbackResult
from amber.ops.state import job_lock
from amber.services import session
from amber.sources.btrfs import BtrfsProvider
from amber.sources.changes import count, trees
from amber.sources.local import LocalSnapshots
from amber.sources.lvm import LvmProvider
from amber.sources.lvm_fresh import plan_undo
from amber.sources.lvm_fresh import swap as swap_lv
from amber.sources.lvm_rollback import merge, plan_merge
from amber.sources.model import SnapshotProvider, VolumeSnapshot
from amber.sources.mounts import inside, system_mounts
from amber.sources.naming import new_name, parse_name
from amber.sources.rollback import plan_swap, swap
from amber.sources.zfs import ZfsProvider


def rollback(
    config: Config,
    req: RollbackRequest,
    passwords: session.PasswordSource,
    note: Callable[[str], None] = lambda _m: None,
    providers: ProviderFactory = system_providers,
) -> RollbackResult:
    """Roll the job back; under the job's lock, so no run of it reads or snapshots meanwhile."""
    config.job(req.job)
    with job_lock(config.state_dir, req.job):
        return _rollback(config, req, passwords, note, providers)


def _rollback(
    config: Config,
    req: RollbackRequest,
    passwords: session.PasswordSource,
    note: Callable[[str], None],
    providers: ProviderFactory,
) -> RollbackResult:
    job = config.job(req.job)
    local, plan, groups = job_snapshots(job, config.state_dir, providers)
    started = time.monotonic()
    kinds = {v.kind for _, v, _ in plan.volumes}
    if req.from_repo:
        if len(kinds) != 1:
            raise UsageError("--from-repo rolls back volumes of one kind at a time: restore files instead")
        return from_repo(config, req, local, plan.volumes, passwords, note, started, _btrfs)
    name = req.to
    if req.to == "latest":  # the newest snapshot a run completed and backed up (not a crashed run's)
        kept = [n for n in groups if (r := local.owners.get(n)) is not None and r.state == "kept"]
        name = kept[-1] if kept else name
    if name not in groups:
        what = "backed-up local snapshot" if name == "latest" else f"local snapshot {name!r}"
        raise LocalSnapshotError(f"no {what} of job {job.name} (see amber local-snapshots {job.name})")
    parts = groups[name]
    if kinds == {"zfs"}:
        return _zfs(local, req, parts, note, started)
    if kinds == {"lvm"}:
        return _lvm(local, req, parts, note, started)
    if kinds != {"btrfs"}:
        raise RollbackRefused(
            f"rollback of a job on {' and '.join(sorted(kinds))} volumes at once is not supported: "
            "restore the files instead"
        )
    provider = parts[0][0]
    assert isinstance(provider, BtrfsProvider)
    return _btrfs(local, provider, req, [s for _, s in parts], note, started, plan.paths)


def _pre_dir(local: LocalSnapshots, job: str, pre_name: str) -> Callable[[VolumeSnapshot], str]:
    return lambda snap: os.path.join(local.snapshot_dir(snap.volume), pre_name)


def _btrfs(
    local: LocalSnapshots,
    provider: BtrfsProvider,
    req: RollbackRequest,
    targets: list[VolumeSnapshot],
    note: Callable[[str], None],
    started: float,
    job_paths: Sequence[str] = (),
    fresh: bool = False,
    replaced: Sequence[str] = (),
) -> RollbackResult:
    """``replaced``: the mount points of every volume a rollback from the repository replaces."""
    pre_name = str(new_name(req.job, pre_rollback=True))
    mounted = {m.target for m in system_mounts()}
    writable = (lambda _s: True) if fresh else provider.writable
    plan = plan_swap(targets, _pre_dir(local, req.job, pre_name), mounted, writable)
    wider = sorted(
        {
            s.volume.mountpoint
            for s in targets
            if any(p != s.volume.mountpoint and inside(p, s.volume.mountpoint) for p in job_paths)
        }
    )
    notes = [
        f"note: the whole subvolume {v} is rolled back, not only the job's paths below it" for v in wider
    ]
    result = RollbackResult(targets[0].name, notes + plan.steps, False, kept_as=pre_name)
    pairs = [(s.volume.mountpoint, s.path) for s in targets]
    snapshot_dirs = {local.snapshot_dir(s.volume) for s in targets}
    _yes_unless_dry(req)
    result.changes, result.not_counted = count(trees(pairs, replaced, snapshot_dirs))
    if req.dry_run:
        return result
    with services_stopped(req.stop, req.start, req.job, targets[0].name, note):
        swap(provider, plan)
    result.done, result.seconds = True, time.monotonic() - started
    return result


def _zfs(
    local: LocalSnapshots,
    req: RollbackRequest,
    parts: list[tuple[SnapshotProvider, VolumeSnapshot]],
    note: Callable[[str], None],
    started: float,
) -> RollbackResult:
    targets = [s for _, s in parts]
    if any("@" not in s.handle for s in targets):  # a dataset beside the live one: undo a rollback
        pre_name = str(new_name(req.job, pre_rollback=True))
        swaps = undo_plan(parts, pre_name)
        undo = RollbackResult(targets[0].name, [" ".join(a) for _, _, cmds in swaps for a, _ in cmds], False)
        undo.kept_as = ", ".join(f"{v.ident}.{pre_name}" for _, v, _ in swaps)
        undo.not_counted = "the dataset put back is not mounted until it is in place"
        if req.dry_run:
            return undo
        require_yes(req.yes)
        with services_stopped(req.stop, req.start, req.job, targets[0].name, note):
            for zfs, volume, commands in swaps:
                run_swap(zfs, volume, commands)
        undo.done, undo.seconds = True, time.monotonic() - started
        return undo
    steps = [f"zfs rollback {s.handle}" for s in targets]
    result = RollbackResult(targets[0].name, steps, False)
    dot_zfs = [os.path.join(s.volume.mountpoint, ".zfs") for s in targets]  # every snapshot of the dataset
    pairs = [(s.volume.mountpoint, s.path) for s in targets]  # ZFS serves <mountpoint>/.zfs/snapshot/<name>
    _yes_unless_dry(req)
    result.changes, result.not_counted = count(trees(pairs, skip=dot_zfs))
    if req.dry_run:
        return result
    with services_stopped(req.stop, req.start, req.job, targets[0].name, note):
        for provider, snap in parts:
            assert isinstance(provider, ZfsProvider)
            provider.rollback(snap, req.destroy_newer)
    result.done, result.seconds = True, time.monotonic() - started
    return result


def _lvm(
    local: LocalSnapshots,
    req: RollbackRequest,
    parts: list[tuple[SnapshotProvider, VolumeSnapshot]],
    note: Callable[[str], None],
    started: float,
) -> RollbackResult:
    if any(_pre_rollback(s.name) for _, s in parts):
        return _lvm_undo(req, parts, note, started)
    _yes_unless_dry(req)  # before anything is mounted
    for provider, snap in parts:  # what is refused (a volume at /) before anything is mounted
        assert isinstance(provider, LvmProvider)
        plan_merge(provider, snap)
    mounted, why = _lvm_mounted(local, req.dry_run, parts)
    plans = []
    for provider, snap in mounted:
        plans.append((provider, plan_merge(provider, snap)))
    steps = [" ".join(argv) for _, plan in plans for argv in plan.commands]
    result = RollbackResult(parts[0][1].name, steps, False)
    if why:
        result.not_counted = why
    else:
        pairs = [(s.volume.mountpoint, s.path) for _, s in mounted]
        snapshot_dirs = {local.snapshot_dir(s.volume) for _, s in mounted}
        result.changes, result.not_counted = count(trees(pairs, skip=snapshot_dirs))
    if req.dry_run:
        result.steps.append("note: the merged snapshot is consumed; a merge cannot be undone")
        return result
    with services_stopped(req.stop, req.start, req.job, result.target, note):
        for provider, plan in plans:
            for line in merge(provider, plan):
                note(line)
    result.done, result.seconds = True, time.monotonic() - started
    return result


def _yes_unless_dry(req: RollbackRequest) -> None:
    """Refuse before walking or mounting anything when neither --yes nor --dry-run is given."""
    if not req.dry_run:
        require_yes(req.yes)


def _pre_rollback(name: str) -> bool:
    parsed = parse_name(name)
    return parsed is not None and parsed.pre_rollback


def _lvm_undo(
    req: RollbackRequest,
    parts: list[tuple[SnapshotProvider, VolumeSnapshot]],
    note: Callable[[str], None],
    started: float,
) -> RollbackResult:
    """Back to the LV a rollback from the repository kept: renamed into place again."""
    pre_name = str(new_name(req.job, pre_rollback=True))
    undos = []
    for provider, snap in parts:
        assert isinstance(provider, LvmProvider)
        undos.append(plan_undo(provider, snap.volume, snap.handle, pre_name))
    steps = [" ".join(a) for u in undos for a in [*(argv for argv, _ in u.swap), *u.after]]
    result = RollbackResult(parts[0][1].name, steps, False, kept_as=", ".join(u.pre for u in undos))
    result.not_counted = "the LV put back is deactivated and not mounted until it is in place"
    if req.dry_run:
        return result
    require_yes(req.yes)
    with services_stopped(req.stop, req.start, req.job, result.target, note):
        for undo in undos:
            swap_lv(undo, note)
    result.done, result.seconds = True, time.monotonic() - started
    return result


def _lvm_mounted(
    local: LocalSnapshots, dry_run: bool, parts: list[tuple[SnapshotProvider, VolumeSnapshot]]
) -> tuple[list[tuple[LvmProvider, VolumeSnapshot]], str]:
    """The snapshot LVs, each mounted read-only (a kept one is not after a reboot): the merge's new trees.

    A dry run mounts nothing; a mount that fails leaves the changes uncounted, not the rollback undone.
    """
    mounted: list[tuple[LvmProvider, VolumeSnapshot]] = []
    why = ""
    for provider, snap in parts:
        assert isinstance(provider, LvmProvider)
        if not snap.path and not why:
            if dry_run:
                why = f"{snap.handle} is not mounted and a dry run mounts nothing"
            else:
                try:
                    snap = provider.mount_snapshot(snap, local.snapshot_dir(snap.volume))
                except LocalSnapshotError as exc:
                    why = f"{snap.handle} could not be mounted: {exc.message}"
        mounted.append((provider, snap))
    return mounted, why
