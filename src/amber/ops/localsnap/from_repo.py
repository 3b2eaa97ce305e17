"""`amber rollback JOB --from-repo ID`: restore beside the live volume, verify, then swap.

The repository snapshot's tree of each top volume is restored, every file's
SHA-256 verified, into a fresh volume beside the live one; only when all of it
verified is it swapped in, so a failed restore never touches the live tree.
* Btrfs: a fresh subvolume in ``<snapshot_dir>/<name>/`` (named and owned like a
  run's snapshot, so a crash leaves what cleanup removes), with the nested
  subvolumes made as subvolumes again; swapped in like a writable target.
* ZFS: a fresh dataset ``<dataset>.<name>`` mounted in ``<snapshot_dir>/<name>/``;
  on failure it is destroyed. The swap renames the live dataset (with its child
  datasets and snapshots) to ``<dataset>.<amber-job-pre-rollback-stamp>`` mounted in
  the snapshot directory, and the fresh one to the live name and mount point.
  The pre-rollback dataset is kept until removed by hand (``zfs destroy -r``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from urllib.parse import quote

from amber.errors import RollbackRefused
from amber.ops.config.model import Config
from amber.ops.localsnap.manager import require_yes, services_stopped
from amber.ops.localsnap.requests import RollbackRequest, RollbackResult
from amber.ops.run.steps import Repositories
from amber.repository import Repository
from amber.services import restore as restore_service
from amber.services import session
from amber.sources.btrfs import BtrfsProvider
from amber.sources.local import LocalSnapshots
from amber.sources.model import SnapshotProvider, Volume, VolumeSnapshot
from amber.sources.mounts import inside
from amber.sources.naming import new_name
from amber.sources.owners import mine
from amber.sources.zfs import ZfsProvider

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
    zfs = tops[0][1].kind == "zfs"
    job = config.job(req.job)
    with Repositories(config, passwords).open(job.repository, lock=not req.dry_run) as repo:  # one KDF
        snapshot_id = repo.resolve_snapshot_id(str(req.from_repo))
        held = repo.load_snapshot(snapshot_id).paths
        uncovered = [v.mountpoint for _, v, _ in tops if not any(inside(v.mountpoint, p) for p in held)]
        if uncovered:
            raise RollbackRefused(
                f"snapshot {snapshot_id[:8]} holds only {', '.join(held)}: rolling {uncovered[0]} back from "
                f"it would drop the rest of that {'dataset' if zfs else 'subvolume'}; use amber restore "
                "for those paths instead"
            )
        if req.dry_run:
            what = "dataset" if zfs else "subvolume"
            steps = [f"restore {snapshot_id[:8]}:{v.mountpoint} into a new {what} in {d}/{name}, verifying it"
                     for _, v, d in tops]  # fmt: skip
            steps += [f"move the live {v.mountpoint} to {d}/{pre_name}/..., the restored tree into its place"
                      for _, v, d in tops]  # fmt: skip
            return RollbackResult(snapshot_id[:8], steps, False)
        require_yes(req.yes)
        if zfs:
            return _zfs(repo, snapshot_id, req, tops, name, pre_name, note, started)
        local.owners.save(mine(name, req.job))  # a crash mid-restore leaves a leftover cleanup removes
        fresh: list[VolumeSnapshot] = []
        for provider, volume, directory in tops:
            assert isinstance(provider, BtrfsProvider)
            target = os.path.join(directory, name, quote(volume.mountpoint, safe=""))
            os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
            provider.create_subvolume(target)
            for nested in _nested(volume, volumes):  # restored as subvolumes again, not plain directories
                inner = os.path.join(target, os.path.relpath(nested.mountpoint, volume.mountpoint))
                os.makedirs(os.path.dirname(inner), mode=0o700, exist_ok=True)
                provider.create_subvolume(inner)
            fresh.append(VolumeSnapshot(name, volume, target, target))
            _restore(repo, snapshot_id, volume, target, note)
    provider = tops[0][0]
    assert isinstance(provider, BtrfsProvider)
    done = btrfs_swap(local, provider, req, fresh, note, started, fresh=True)
    local.owners.forget(name)
    done.target = snapshot_id[:8]
    return done


def _restore(
    repo: Repository, snapshot_id: str, volume: Volume, target: str, note: Callable[[str], None]
) -> None:
    note(f"restoring {snapshot_id[:8]}:{volume.mountpoint} into {target}")
    result = restore_service.restore(
        repo,
        restore_service.RestoreRequest(ref=f"{snapshot_id}:{volume.mountpoint}", target=target, verify=True),
    )
    restore_service.raise_if_damaged(result)


def _zfs(
    repo: Repository, snapshot_id: str, req: RollbackRequest, tops: Sequence[Planned], name: str,
    pre_name: str, note: Callable[[str], None], started: float,
) -> RollbackResult:  # fmt: skip
    swaps: list[tuple[ZfsProvider, Sequence[Sequence[str]]]] = []
    made: list[tuple[ZfsProvider, str]] = []
    try:
        for provider, volume, directory in tops:
            assert isinstance(provider, ZfsProvider)
            dataset = f"{volume.ident}.{name}"
            target = os.path.join(directory, name, quote(volume.mountpoint, safe=""))
            provider.create_dataset(dataset, target)
            made.append((provider, dataset))
            _restore(repo, snapshot_id, volume, target, note)
            pre = os.path.join(directory, pre_name, quote(volume.mountpoint, safe=""))
            swaps.append(
                (provider, provider.swap_commands(volume, dataset, f"{volume.ident}.{pre_name}", pre))
            )
    except BaseException:
        for provider, dataset in made:  # a failed restore leaves nothing behind
            provider.destroy_dataset(dataset)
        raise
    result = RollbackResult(snapshot_id[:8], [" ".join(a) for _, cmds in swaps for a in cmds], False)
    with services_stopped(req.stop, req.start, req.job, name, note):
        for provider, commands in swaps:
            provider.swap(commands)
    result.done, result.seconds = True, time.monotonic() - started
    result.kept_as = f"{tops[0][1].ident}.{pre_name}"
    return result


def _nested_in(volume: Volume, volumes: list[Planned]) -> bool:
    others = [v for _, v, _ in volumes if v.mountpoint != volume.mountpoint]
    return any(inside(volume.mountpoint, v.mountpoint) for v in others)


def _nested(top: Volume, volumes: list[Planned]) -> list[Volume]:
    """The volumes below ``top``, outer ones first."""
    below = [v for _, v, _ in volumes if v.mountpoint != top.mountpoint]
    below = [v for v in below if inside(v.mountpoint, top.mountpoint)]
    return sorted(below, key=lambda v: v.mountpoint.count("/"))
