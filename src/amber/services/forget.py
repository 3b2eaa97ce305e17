"""forget: remove snapshots by retention policy or by ID.

Only snapshot files are removed; the data they referenced stays until prune
reclaims it. forget takes a *shared* lock, so it never blocks or waits for
backups: removing a snapshot file cannot endanger a concurrent backup (its blobs
stay), and prune's deletion protocol, not forget, decides when data goes.
Maintenance that holds an exclusive lock does exclude forget.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from amber.engine.retention import Duration, GroupResult, Policy, SnapshotRecord, parse_duration, plan
from amber.engine.retention_hold import apply_holds, holds
from amber.errors import AmberError, AppendOnlyViolation, ObjectNotFound, UsageError
from amber.repository import Repository, Snapshot
from amber.services import prune as prune_service
from amber.services.snapshots import SnapshotFilter, select


@dataclass
class ForgetRequest:
    policy: Policy = field(default_factory=Policy)
    group_by: tuple[str, ...] = ("host", "paths")
    filter: SnapshotFilter = field(default_factory=SnapshotFilter)
    snapshot_ids: list[str] = field(default_factory=list)  # explicit IDs (prefixes): remove these
    dry_run: bool = False
    prune: prune_service.PruneOptions | None = None  # then reclaim space (not in a dry run)
    hold_clean: int = 1  # clean snapshots before an unacknowledged suspicious one that stay


@dataclass
class ForgetResult:
    groups: list[GroupResult] = field(default_factory=list)
    explicit: list[SnapshotRecord] = field(default_factory=list)  # snapshots named by ID
    removed: list[str] = field(default_factory=list)  # IDs whose files this run removed
    vanished: list[str] = field(default_factory=list)  # already removed by someone else
    damaged: list[tuple[str, AmberError]] = field(default_factory=list)  # unreadable: left alone
    dry_run: bool = False
    pruned: prune_service.PruneResult | None = None
    held: dict[str, str] = field(default_factory=dict)  # snapshot ID -> why it stays (ransomware hold)

    @property
    def to_remove(self) -> list[SnapshotRecord]:
        return [s for g in self.groups for s in g.remove] + self.explicit


def record(sid: str, snap: Snapshot) -> SnapshotRecord:
    return SnapshotRecord(sid, snap.datetime, snap.hostname, tuple(snap.paths), tuple(snap.tags))


def refuse_if_append_only(repo: Repository, what: str) -> None:
    if repo.append_only:
        raise AppendOnlyViolation(
            f"append-only repository: {what} is refused (snapshots can be added, never removed); "
            "run it with a key that is not append-only"
        )


def plan_forget(repo: Repository, req: ForgetRequest, now: dt.datetime | None = None) -> ForgetResult:
    """What would be kept and removed, and why. Reads only."""
    result = ForgetResult(dry_run=req.dry_run)
    if req.snapshot_ids:
        if not req.policy.is_empty():
            raise UsageError("give either --keep-* options or snapshot IDs, not both")
        result.held = _holds(repo, req)
        for ref in dict.fromkeys(req.snapshot_ids):
            sid = repo.resolve_snapshot_id(ref)
            if sid in result.held:
                continue  # named, but held: reported, never removed
            try:
                result.explicit.append(record(sid, repo.load_snapshot(sid)))
            except AmberError:  # a damaged snapshot may be removed by ID
                result.explicit.append(SnapshotRecord(sid, dt.datetime.fromtimestamp(0, dt.UTC)))
        return result
    req.policy.validate()  # an empty policy would remove everything: refuse
    found = select(repo, req.filter, result.damaged)
    records = [record(sid, snap) for sid, snap in found]
    result.groups = plan(records, req.policy, req.group_by, now or dt.datetime.now(dt.UTC))
    result.held = _holds(repo, req)
    apply_holds(result.groups, result.held)
    return result


def _holds(repo: Repository, req: ForgetRequest) -> dict[str, str]:
    """The ransomware hold over every snapshot (not only the filtered ones: a filter must not hide it)."""
    everything = select(repo, SnapshotFilter(), [])
    return holds([record(sid, snap) for sid, snap in everything], req.hold_clean)


def forget(
    repo: Repository,
    req: ForgetRequest,
    now: dt.datetime | None = None,
    on_removed: Callable[[str], None] | None = None,
) -> ForgetResult:
    """Plan, then (unless dry run) remove the snapshot files; then prune if asked."""
    if not req.dry_run:
        refuse_if_append_only(repo, "forget")
    with shared_unless_held(repo):
        result = plan_forget(repo, req, now)
        if req.dry_run:
            return result
        for snap in result.to_remove:
            try:
                repo.remove_snapshot(snap.id)
            except ObjectNotFound:
                result.vanished.append(snap.id)  # a concurrent forget was faster
                continue
            result.removed.append(snap.id)
            if on_removed is not None:
                on_removed(snap.id)
    if req.prune is not None:  # after our lock is gone: prune takes its own maintenance lock
        result.pruned = prune_service.prune(repo, req.prune)
    return result


@contextlib.contextmanager
def shared_unless_held(repo: Repository) -> Iterator[None]:
    """Run under a lock this process holds on ``repo`` already (purge's exclusive one), or a shared one."""
    if repo.held_locks:
        yield
        return
    with repo.lock(exclusive=False):
        yield


def policy_from(config: Any) -> Policy:
    """A Policy from anything with keep_* attributes (the config file's retention tables)."""

    def duration(name: str) -> Duration:
        text = getattr(config, name, None)
        return parse_duration(text) if text else Duration()

    counts = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
    windows = ("keep_within", *(f"keep_within_{n}" for n in counts[1:]))
    fields: dict[str, Any] = {f"keep_{n}": int(getattr(config, f"keep_{n}", 0) or 0) for n in counts}
    fields |= {w: duration(w) for w in windows}
    return Policy(**fields, keep_tags=tuple(getattr(config, "keep_tags", ()) or ()))


def forget_policy(
    repo: Repository, config: Any, host: str | None = None, tags: list[str] | None = None
) -> list[str]:
    """For ``amber run``: apply a retention config to one job's snapshots; the IDs removed."""
    flt = SnapshotFilter(hosts=[host] if host else [], tags=[",".join(tags)] if tags else [])
    return forget(repo, ForgetRequest(policy_from(config), filter=flt)).removed
