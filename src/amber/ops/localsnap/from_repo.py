"""`amber rollback JOB --from-repo ID`: restore beside the live volume, verify, then swap.

The repository snapshot's tree of each top volume is restored, every file's
SHA-256 verified and the whole tree compared, into a fresh volume beside the
live one; only then is it swapped in, so a failed restore never touches the
live tree. Everything a kind can refuse is checked before anything is made.
* Btrfs: a fresh subvolume in ``<snapshot_dir>/<name>/`` (named and owned like a
  run's snapshot, so a crash leaves what cleanup removes), with the nested
  subvolumes made as subvolumes again; swapped in like a writable target. A
  failed restore, check or swap (which puts back all it did) deletes it at once.
* ZFS: a fresh dataset with its child datasets (from_repo_zfs.py).
* LVM: a fresh logical volume of the origin's size and filesystem (from_repo_lvm.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from urllib.parse import quote

from amber.errors import AmberError, LocalSnapshotError, RollbackRefused, SnapshotNotFound
from amber.ops.config.model import Config, JobConfig
from amber.ops.localsnap.from_repo_lvm import plan_lvm, rollback_lvm
from amber.ops.localsnap.from_repo_lvm import steps as lvm_steps
from amber.ops.localsnap.from_repo_zfs import plan_zfs, rollback_zfs
from amber.ops.localsnap.from_repo_zfs import steps as zfs_steps
from amber.ops.localsnap.manager import require_yes
from amber.ops.localsnap.requests import RollbackRequest, RollbackResult
from amber.ops.localsnap.restoring import restore_verified
from amber.ops.run.steps import Repositories, job_filter
from amber.repository import Repository
from amber.services import session
from amber.services.snapshots import select
from amber.sources.btrfs import BtrfsProvider
from amber.sources.changes import Changes, count_against, trees
from amber.sources.local import LocalSnapshots
from amber.sources.model import SnapshotProvider, Volume, VolumeSnapshot
from amber.sources.mounts import inside
from amber.sources.naming import new_name
from amber.sources.owners import mine
from amber.sources.restored import snapshot_entries

Planned = tuple[SnapshotProvider, Volume, str]  # provider, volume, its snapshot directory
BtrfsSwap = Callable[..., RollbackResult]


def from_repo(
    config: Config,
    req: RollbackRequest,
    local: LocalSnapshots,
    volumes: list[Planned],
    passwords: session.PasswordSource,
    note: Callable[[str], None],
    started: float,
    btrfs_swap: BtrfsSwap,
) -> RollbackResult:
    tops = [(p, v, d) for p, v, d in volumes if not _nested_in(v, volumes)]
    name = str(new_name(req.job))
    pre_name = str(new_name(req.job, pre_rollback=True))
    kind = tops[0][1].kind
    what = {"zfs": "dataset", "lvm": "logical volume"}.get(kind, "subvolume")
    job = config.job(req.job)
    with Repositories(config, passwords).open(job.repository, lock=not req.dry_run) as repo:  # one KDF
        snapshot_id = _repository_snapshot(repo, job, str(req.from_repo), tops)
        held = repo.load_snapshot(snapshot_id).paths
        uncovered = [v.mountpoint for _, v, _ in tops if not any(inside(v.mountpoint, p) for p in held)]
        if uncovered:
            raise RollbackRefused(
                f"snapshot {snapshot_id[:8]} holds only {', '.join(held)}: rolling {uncovered[0]} back from "
                f"it would drop the rest of that {what}; use amber restore for those paths instead"
            )
        zfs_parts = plan_zfs(tops, volumes, name, pre_name) if kind == "zfs" else []
        lvm_plans = plan_lvm(tops, volumes, name, pre_name) if kind == "lvm" else []
        if req.dry_run:
            if zfs_parts or lvm_plans:
                lines = zfs_steps(zfs_parts, snapshot_id) if zfs_parts else lvm_steps(lvm_plans, snapshot_id)
                planned = RollbackResult(snapshot_id[:8], lines, False)
            else:
                steps = [f"restore {snapshot_id[:8]}:{v.mountpoint} into a new {what} in {d}/{name}, "
                         "verifying it" for _, v, d in tops]  # fmt: skip
                steps += [f"move the live {v.mountpoint} to {d}/{pre_name}/..., the restored tree into its "
                          "place" for _, v, d in tops]  # fmt: skip
                planned = RollbackResult(snapshot_id[:8], steps, False)
            planned.changes, planned.not_counted = _count_against(repo, snapshot_id, tops, volumes)
            return planned
        require_yes(req.yes)
        owners = local.owners
        if zfs_parts:
            return rollback_zfs(repo, snapshot_id, req, zfs_parts, name, pre_name, owners, note, started)
        if lvm_plans:
            return rollback_lvm(repo, snapshot_id, req, lvm_plans, name, owners, note, started)
        local.owners.save(mine(name, req.job))  # a crash mid-restore leaves a leftover cleanup removes
        fresh: list[tuple[BtrfsProvider, VolumeSnapshot]] = []
        try:
            for provider, volume, directory in tops:
                assert isinstance(provider, BtrfsProvider)
                target = os.path.join(directory, name, quote(volume.mountpoint, safe=""))
                os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
                provider.create_subvolume(target)
                fresh.append((provider, VolumeSnapshot(name, volume, target, target)))
                for nested in _nested(volume, volumes):  # restored as subvolumes again, not plain directories
                    inner = os.path.join(target, os.path.relpath(nested.mountpoint, volume.mountpoint))
                    os.makedirs(os.path.dirname(inner), mode=0o700, exist_ok=True)
                    provider.create_subvolume(inner)
                restore_verified(repo, snapshot_id, volume, target, note)
        except BaseException:
            _discard(fresh, local, name, note)
            raise
    provider = tops[0][0]
    assert isinstance(provider, BtrfsProvider)
    replaced = [v.mountpoint for _, v, _ in volumes]
    targets = [s for _, s in fresh]
    try:
        done = btrfs_swap(local, provider, req, targets, note, started, fresh=True, replaced=replaced)
    except LocalSnapshotError:  # the swap put back what it could: the fresh ones in their place go
        _discard(fresh, local, name, note)
        raise
    local.owners.forget(name)
    done.target = snapshot_id[:8]
    return done


def _discard(
    fresh: list[tuple[BtrfsProvider, VolumeSnapshot]],
    local: LocalSnapshots,
    name: str,
    note: Callable[[str], None],
) -> None:
    """Delete the fresh subvolumes still in their place (one a failed swap left live is not there)."""
    left = False
    for provider, snap in fresh:
        if os.path.isdir(snap.handle):
            try:
                provider.delete(snap)
            except LocalSnapshotError as exc:
                note(f"{exc.message} (the next cleanup removes {snap.handle})")
                left = True
    if not left:
        local.owners.forget(name)


def _count_against(
    repo: Repository, snapshot_id: str, tops: list[Planned], volumes: list[Planned]
) -> tuple[Changes | None, str]:
    """A dry run restores nothing: each live top volume is compared with the repository snapshot's tree."""
    lives = [v.mountpoint for _, v, _ in tops]
    skip = [d for _, _, d in volumes]
    skip += [os.path.join(v.mountpoint, ".zfs") for _, v, _ in volumes if v.kind == "zfs"]
    replaced = [v.mountpoint for _, v, _ in volumes]
    live_trees = [live for live, _ in trees([(m, m) for m in lives], replaced, skip)]
    try:
        expected = [snapshot_entries(repo, snapshot_id, m) for m in lives]
    except AmberError as exc:  # a damaged tree: the real rollback's restore would say more
        return None, f"the snapshot's tree could not be read: {exc.message}"
    return count_against(live_trees, expected)


def _repository_snapshot(repo: Repository, job: JobConfig, ref: str, tops: list[Planned]) -> str:
    """The snapshot ``ref`` names: an ID (prefix), or ``latest``, the newest of this job
    (its host and tags, as retention picks) that holds every volume rolled back."""
    if ref != "latest":
        return repo.resolve_snapshot_id(ref)
    covering = [
        sid
        for sid, snap in select(repo, job_filter(job))
        if all(any(inside(v.mountpoint, p) for p in snap.paths) for _, v, _ in tops)
    ]
    if not covering:
        where = ", ".join(v.mountpoint for _, v, _ in tops)
        raise SnapshotNotFound(f"no snapshot of job {job.name} holds {where} (latest)")
    return covering[-1]


def _nested_in(volume: Volume, volumes: list[Planned]) -> bool:
    others = [v for _, v, _ in volumes if v.mountpoint != volume.mountpoint]
    return any(inside(volume.mountpoint, v.mountpoint) for v in others)


def _nested(top: Volume, volumes: list[Planned]) -> list[Volume]:
    """The volumes below ``top``, outer ones first."""
    below = [v for _, v, _ in volumes if v.mountpoint != top.mountpoint]
    below = [v for v in below if inside(v.mountpoint, top.mountpoint)]
    return sorted(below, key=lambda v: v.mountpoint.count("/"))
