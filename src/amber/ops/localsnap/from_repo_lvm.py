"""`amber rollback --from-repo` on LVM: restore into a fresh LV, verify, then swap (sources/lvm_fresh.py).

An owner record is written before the first ``lvcreate``, so a crash leaves a
fresh LV that the next cleanup removes; a failed build, restore or check
removes it at once and the live volume is not touched.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

from amber.ops.localsnap.manager import services_stopped
from amber.ops.localsnap.requests import RollbackRequest, RollbackResult
from amber.ops.localsnap.restoring import restore_verified
from amber.repository import Repository
from amber.sources.changes import Changes, count, total, trees
from amber.sources.lvm import LvmProvider
from amber.sources.lvm_fresh import FreshLv, build, discard, plan_fresh_lv, swap_all, unmount
from amber.sources.model import SnapshotProvider, Volume
from amber.sources.mounts import strictly_inside
from amber.sources.owners import Owners, mine

Planned = tuple[SnapshotProvider, Volume, str]


def plan_lvm(tops: Sequence[Planned], volumes: Sequence[Planned], name: str, pre_name: str) -> list[FreshLv]:
    plans = []
    for provider, volume, directory in tops:
        assert isinstance(provider, LvmProvider)
        nested = [v.mountpoint for _, v, _ in volumes if strictly_inside(v.mountpoint, volume.mountpoint)]
        plans.append(plan_fresh_lv(provider, volume, nested, name, pre_name, directory))
    return plans


def steps(plans: Sequence[FreshLv], snapshot_id: str) -> list[str]:
    lines = []
    for plan in plans:
        lines += [" ".join(a) for a in plan.build]
        lines.append(f"restore {snapshot_id[:8]}:{plan.volume.mountpoint} into {plan.mountpoint}, verified")
        lines.append(" ".join(plan.unmount))
        lines += [" ".join(a) for a, _ in plan.swap] + [" ".join(a) for a in plan.after]
    return lines


def _count(plan: FreshLv) -> tuple[Changes | None, str]:
    """The live tree against the restored LV while it is mounted (in <snapshot_dir>/<name>/<quoted path>)."""
    snapshot_dir = os.path.dirname(os.path.dirname(plan.mountpoint))
    return count(trees([(plan.volume.mountpoint, plan.mountpoint)], skip=[snapshot_dir]))


def rollback_lvm(
    repo: Repository, snapshot_id: str, req: RollbackRequest, plans: Sequence[FreshLv], name: str,
    owners: Owners, note: Callable[[str], None], started: float,
) -> RollbackResult:  # fmt: skip
    owners.save(mine(name, req.job))
    built: list[FreshLv] = []
    mounted = False
    counted = []
    try:
        for plan in plans:
            build(plan, note)
            built.append(plan)
            mounted = True
            restore_verified(repo, snapshot_id, plan.volume, plan.mountpoint, note)
            counted.append(_count(plan))
            unmount(plan)
            mounted = False
    except BaseException:
        for plan in built:
            discard(plan, mounted and plan is built[-1], note)
        raise
    result = RollbackResult(snapshot_id[:8], steps(plans, snapshot_id), False)
    result.changes, result.not_counted = total(counted)
    with services_stopped(req.stop, req.start, req.job, name, note):
        swap_all(plans, note)
    owners.forget(name)
    result.done, result.seconds = True, time.monotonic() - started
    result.kept_as = ", ".join(p.pre for p in plans)
    return result
