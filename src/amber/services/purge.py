"""purge: honour an erasure request in one repository, and prove the data is gone (design §12b).

1. Refuse where deleting is impossible: an append-only repository (or key), or
   a backend whose Object Lock keeps objects (``PurgeRefused``, exit 38). The
   refusal comes before anything is written.
2. Under an **exclusive** lock (no backup can deduplicate against what is being
   erased, and prune's deletion phase runs at once instead of waiting for other
   lock holders): rewrite every snapshot that holds a matching path, forgetting
   the originals once all rewrites are durable (``services.rewrite``).
3. Prune with the purged blobs as ``erase``: every pack holding an unused copy
   of one is deleted or repacked, whatever ``--max-unused`` would tolerate.
4. Verify (``engine.erasure``): purged blobs that remaining snapshots still
   reference are *retained* (the same bytes belong to a kept file: dedup), and
   named with the kept paths; every other one must be in no index entry and no
   pack header. Anything left is ``PurgeIncomplete`` (exit 39), raised by the
   caller after it recorded the result.

``targets`` from an earlier, interrupted purge (kept by the caller) are erased
too: after a crash between forget and prune, the rewrites no longer match, and
only that list still says which blobs must go.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from amber.engine.erasure import ErasureReport, referenced, verify_erased
from amber.engine.pruner import PruneOptions, PruneResult
from amber.engine.rewriter import Erasable
from amber.errors import AmberError, IntegrityError, PurgeRefused
from amber.repository import Repository
from amber.services import prune as prune_service
from amber.services.rewrite import RewriteRequest, RewriteResult, rewrite
from amber.services.snapshots import SnapshotFilter
from amber.storage.url import retention_layer

AUDIT_PATHS = 1000  # paths and hashes named in the audit record


@dataclass
class PurgeRequest:
    patterns: list[str] = field(default_factory=list)  # backup's --exclude rules; a full path is one file
    sha256: list[bytes] = field(default_factory=list)  # files with this content, under any name
    dry_run: bool = False
    targets: set[bytes] = field(default_factory=set)  # blobs an interrupted purge still had to erase
    on_targets: Callable[[set[bytes]], None] | None = None  # told what must go, before anything is removed


@dataclass
class PurgeResult:
    rewrite: RewriteResult
    prune: PruneResult | None = None
    report: ErasureReport | None = None
    dry_run: bool = False
    targets: set[bytes] = field(default_factory=set)
    refusal: str = ""  # a dry run where the real purge would be refused: why

    @property
    def verified(self) -> bool:
        return not self.dry_run and self.report is not None and self.report.ok

    def audit(self, patterns: list[str], sha256: list[bytes]) -> dict[str, Any]:
        """What the audit log keeps: names, hashes, IDs and counts, never content."""
        rw = self.rewrite
        paths = sorted({r.path.decode("utf-8", "backslashreplace") for e in rw.rewritten for r in e.removed})
        out: dict[str, Any] = {
            "patterns": patterns,
            "sha256_given": [h.hex() for h in sha256],
            "dry_run": self.dry_run,
            "paths": paths[:AUDIT_PATHS],
            "paths_total": len(paths),
            "file_sha256": sorted(h.hex() for h in rw.erasable.sha256)[:AUDIT_PATHS],
            "snapshots": [{"old": e.old_id, "new": e.new_id or None} for e in rw.rewritten],
            "files": sum(e.files for e in rw.rewritten),
            "bytes": sum(e.bytes for e in rw.rewritten),
            "blobs": len(self.targets),
        }
        if self.prune is not None:
            p = self.prune
            out["packs"] = {"repacked": p.plan.repacked.packs, "deleted": p.deleted_packs,
                            "bytes_freed": p.deleted_bytes, "pending": p.pending_packs}  # fmt: skip
        if self.report is not None and self.dry_run:
            out["would_be_retained_by"] = self.report.kept_paths()[:AUDIT_PATHS]
        elif self.report is not None:
            r = self.report
            out["verified"] = r.ok
            out["blobs_erased"] = r.erased
            out["blobs_retained"] = len(r.retained)
            out["retained_by"] = r.kept_paths()[:AUDIT_PATHS]
            out["packs_read"] = r.packs_read
            if not r.ok:
                out["still_stored_packs"] = sorted(r.still_stored)
                out["still_indexed"] = len(r.still_indexed)
        return out


def refuse_if_cannot_delete(repo: Repository, now: dt.datetime | None = None) -> None:
    """``PurgeRefused`` when this repository cannot delete: append-only, or Object Lock retention."""
    if repo.append_only:
        raise PurgeRefused(
            "purge refused: the repository (or the key in use) is append-only, so nothing can be deleted; "
            "run purge with a key that is not append-only"
        )
    layer = retention_layer(repo.backend)
    days = layer.retention_days() if layer is not None else 0
    if days > 0:
        until = (now or dt.datetime.now(dt.UTC)) + dt.timedelta(days=days)
        raise PurgeRefused(
            f"purge refused: Object Lock keeps every object for {days} days after it is written or its "
            f"retention is extended; the packs holding these files can be deleted from {until:%Y-%m-%d} "
            "at the latest if nothing extends them meanwhile (stop `object-lock extend` and `amber run` "
            "on this repository, then purge again)"
        )


def _refuse_unreadable_snapshots(repo: Repository) -> None:
    """A snapshot that cannot be read may hold the paths and cannot be rewritten: stop before any change."""
    errors: list[tuple[str, AmberError]] = []
    repo.snapshots(errors)
    if errors:
        sid, exc = errors[0]
        raise IntegrityError(
            f"{len(errors)} snapshot(s) cannot be read (first {sid[:8]}: {exc.message}); purge cannot "
            "rewrite them, so nothing was changed: run `amber check`, then repair or forget them"
        )


def purge(
    repo: Repository, req: PurgeRequest, progress_note: Callable[[str], None] | None = None
) -> PurgeResult:
    """Rewrite, forget, prune and verify (or, in a dry run, only say what would go)."""
    note = progress_note or (lambda _m: None)
    if not req.dry_run:
        refuse_if_cannot_delete(repo)
    rw_req = RewriteRequest(req.patterns, req.sha256, [], SnapshotFilter(), forget=True, dry_run=req.dry_run)
    if req.dry_run:
        refusal = ""
        try:
            refuse_if_cannot_delete(repo)
        except PurgeRefused as exc:
            refusal = exc.message
        with repo.lock():
            result = rewrite(repo, rw_req)
            targets = result.erasable.all_blobs | req.targets
            roots = {sid: s.tree for sid, s in repo.snapshots([]).items()}  # as the purge would leave them
            for entry in result.rewritten:
                roots.pop(entry.old_id, None)
                if not entry.emptied:
                    roots[entry.old_id] = entry.new_tree
            kept = ErasureReport(retained=referenced(repo, targets, roots, result.load_tree))
        return PurgeResult(result, report=kept, dry_run=True, targets=targets, refusal=refusal)
    targets = set(req.targets)

    def keep_targets(erasable: Erasable) -> None:
        targets.update(erasable.all_blobs)
        if req.on_targets is not None:
            req.on_targets(targets)  # before any original is removed: a crash must not lose the list

    rw_req.before_forget = keep_targets
    with repo.lock(exclusive=True):
        _refuse_unreadable_snapshots(repo)
        note("rewriting the snapshots that hold matching paths")
        result = rewrite(repo, rw_req)
        targets |= result.erasable.all_blobs
        note("pruning the purged data")
        pruned = prune_service.prune(repo, PruneOptions(erase=frozenset(targets)))
        note("verifying that the purged data is gone")
        report = verify_erased(repo, targets)
    return PurgeResult(result, pruned, report, targets=targets)
