"""`amber rollback --from-repo` on ZFS: a fresh dataset (and its children) beside the live one, then renames.

Command contract only (sources/zfs_swap.py plans the commands). The fresh
dataset ``<dataset>.<name>`` is mounted in ``<snapshot_dir>/<name>/``, with an
owner record first (a crash leaves what cleanup removes); a failed restore or
check destroys it (``zfs destroy -r``) and the live dataset is untouched. The
old dataset is kept, unmounted, as ``<dataset>.<pre-rollback name>`` until the
next cleanup; ``rollback --to`` that name renames it back.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from amber.errors import LocalSnapshotError, RollbackRefused
from amber.ops.localsnap.manager import services_stopped
from amber.ops.localsnap.requests import RollbackRequest, RollbackResult
from amber.ops.localsnap.restoring import restore_verified
from amber.repository import Repository
from amber.sources.changes import Changes, count, total, trees
from amber.sources.model import SnapshotProvider, Volume, VolumeSnapshot
from amber.sources.mounts import strictly_inside
from amber.sources.naming import parse_name
from amber.sources.owners import Owners, mine
from amber.sources.runner import Undoable, run_undoable
from amber.sources.zfs import ZfsProvider
from amber.sources.zfs_swap import (
    Child,
    FreshPlan,
    Layout,
    plan_fresh,
    read_layout,
    read_local_properties,
    reversal,
    swap_steps,
)

Planned = tuple[SnapshotProvider, Volume, str]


@dataclass
class ZfsPart:
    provider: ZfsProvider
    volume: Volume
    fresh: str  # the fresh dataset's name
    fresh_mount: str
    build: FreshPlan
    swap: list[Undoable]
    nested: list[str]  # mount points of the datasets below the live one
    snapshot_dir: str

    def count(self) -> tuple[Changes | None, str]:
        """The live tree against the restored one, while that is mounted (before the swap)."""
        skip = [self.snapshot_dir, *(os.path.join(m, ".zfs") for m in [self.volume.mountpoint, *self.nested])]
        return count(trees([(self.volume.mountpoint, self.fresh_mount)], self.nested, skip))


def plan_zfs(tops: Sequence[Planned], volumes: Sequence[Planned], name: str, pre_name: str) -> list[ZfsPart]:
    """Read each top dataset's layout and properties; refuse (before any change) what cannot be made again."""
    parts = []
    for provider, volume, directory in tops:
        assert isinstance(provider, ZfsProvider)
        layout = read_layout(provider.run, volume.ident)
        props = read_local_properties(provider.run, volume.ident)
        inner = [v for _, v, _ in volumes if strictly_inside(v.mountpoint, volume.mountpoint)]
        nested = [(v.ident, v.mountpoint) for v in inner]
        fresh = f"{volume.ident}.{name}"
        fresh_mount = os.path.join(directory, name, quote(volume.mountpoint, safe=""))
        build = plan_fresh(layout, nested, props, fresh, fresh_mount)
        replacement = Layout(fresh, "none", True, [Child(c.rel, "", c.local) for c in layout.children])
        swap = swap_steps(layout, replacement, f"{volume.ident}.{pre_name}")
        below = [m for _, m in nested]
        parts.append(ZfsPart(provider, volume, fresh, fresh_mount, build, swap, below, directory))
    return parts


def steps(parts: Sequence[ZfsPart], snapshot_id: str) -> list[str]:
    lines = []
    for part in parts:
        lines += [" ".join(a) for a in part.build.create]
        lines.append(f"restore {snapshot_id[:8]}:{part.volume.mountpoint} into {part.fresh_mount}, verified")
        lines += [" ".join(a) for a in part.build.after_restore]
        lines += [" ".join(a) for a, _ in part.swap]
    return lines


def rollback_zfs(
    repo: Repository, snapshot_id: str, req: RollbackRequest, parts: Sequence[ZfsPart], name: str,
    pre_name: str, owners: Owners, note: Callable[[str], None], started: float,
) -> RollbackResult:  # fmt: skip
    owners.save(mine(name, req.job))
    made: list[ZfsPart] = []
    counted = []
    try:
        for part in parts:
            part.provider.run_all(part.build.create[:1])
            made.append(part)
            part.provider.run_all(part.build.create[1:])
            restore_verified(repo, snapshot_id, part.volume, part.fresh_mount, note)
            counted.append(part.count())
            part.provider.run_all(part.build.after_restore)
    except BaseException:
        for part in made:  # a failed restore leaves nothing behind
            _destroy(part, note)
        raise
    result = RollbackResult(snapshot_id[:8], steps(parts, snapshot_id), False)
    result.changes, result.not_counted = total(counted)
    with services_stopped(req.stop, req.start, req.job, name, note):
        _swap_all(parts, note)
    owners.forget(name)
    result.done, result.seconds = True, time.monotonic() - started
    result.kept_as = ", ".join(f"{p.volume.ident}.{pre_name}" for p in parts)
    return result


def _swap_all(parts: Sequence[ZfsPart], note: Callable[[str], None]) -> None:
    """Swap every part in; when one fails, the parts already swapped go back, last first.

    Each fresh dataset that is not live is destroyed again, so a rollback of
    several datasets switches all of them or none.
    """
    swapped: list[ZfsPart] = []
    for part in parts:
        try:
            run_swap(part.provider, part.volume, part.swap)
        except LocalSnapshotError as exc:
            stuck = ""
            for done in reversed(swapped):
                failed, _ = run_undoable(done.provider.run, reversal(done.swap))
                if failed:
                    stuck = f"; putting {done.volume.mountpoint} back failed too ({failed}): check it"
                    break
                _destroy(done, note)
            if not stuck:
                for later in parts[parts.index(part) :]:
                    _destroy(later, note)
            back = ", ".join(d.volume.mountpoint for d in swapped)
            back = f"; {back} put back as before" if back else ""
            raise LocalSnapshotError(exc.message + (stuck or back)) from exc
        swapped.append(part)


def _destroy(part: ZfsPart, note: Callable[[str], None]) -> None:
    try:
        part.provider.destroy_dataset(part.fresh)
    except LocalSnapshotError as exc:
        note(f"{exc.message} (the next cleanup removes it)")


def undo_plan(
    parts: Sequence[tuple[SnapshotProvider, VolumeSnapshot]], pre_name: str
) -> list[tuple[ZfsProvider, Volume, list[Undoable]]]:
    """Undo of a rollback from the repository: the pre-rollback dataset renamed back into place."""
    swaps = []
    for provider, snap in parts:
        assert isinstance(provider, ZfsProvider)
        parsed = parse_name(snap.name)
        if "@" in snap.handle or parsed is None or not parsed.pre_rollback:
            raise RollbackRefused(
                f"{snap.handle} is what an interrupted rollback left, not a state to go back to: "
                "the next cleanup removes it"
            )
        live = read_layout(provider.run, snap.volume.ident)
        back = read_layout(provider.run, snap.handle)
        swaps.append((provider, snap.volume, swap_steps(live, back, f"{snap.volume.ident}.{pre_name}")))
    return swaps


def run_swap(provider: ZfsProvider, volume: Volume, steps: Sequence[Undoable]) -> None:
    failed, stuck = run_undoable(provider.run, steps)
    if stuck:
        raise LocalSnapshotError(
            f"{failed}; undoing it failed too ({stuck}): {volume.mountpoint} may be unmounted or renamed"
        )
    if failed:
        raise LocalSnapshotError(f"{failed}; {volume.ident} was not changed")
