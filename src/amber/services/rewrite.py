"""rewrite: new snapshots without the paths that match (restic's ``rewrite``, borg's ``recreate``).

Order (design §11): the new trees go through the blob store (packs, then
index on ``flush``), then each new snapshot is saved, and only after all of
them are durable are the originals removed (``forget``). A crash at any point
leaves every original, or its rewrite, restorable; at worst both (twins). Run
again, it finds the rewrite an interrupted run wrote (same identity and tree)
and uses it instead of writing a second one.

A rewrite keeps every field of the original (time, host, paths, tags, parent
mapped to its own rewrite) and records the original's identity in
``original``, as copy and repair do. Without ``forget`` the originals stay
and the rewrites get the tag ``rewrite`` (restic's rule); with ``forget`` the
originals are removed and no tag is added. The summary's file, byte and
directory counts drop by what was left out, and recorded paths under the
patterns (``paths``, ``skipped``, ``changed_during_read``, the anomaly
evidence) go too. A snapshot whose backup paths are all excluded would be
empty: it is not rewritten, and with ``forget`` it is removed.

Suspicious and held snapshots (design §12b) are rewritten like any other: the
rewrite keeps time, host, paths and tags, so the ransomware hold moves to it.

Locking: a shared lock, as backup (it adds blobs and snapshots) and forget
(it removes snapshot files) take. Without ``forget`` nothing is removed, so
append-only repositories allow it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from amber.engine.retention_hold import ACKED_TAG, SUSPICIOUS_TAG
from amber.engine.rewriter import Erasable, RemovedEntry, TreeRewriter, exclusion, path_excluded
from amber.errors import AmberError, ObjectNotFound
from amber.repository import Repository, Snapshot, Tree
from amber.services.forget import refuse_if_append_only, shared_unless_held
from amber.services.own_snapshots import OwnSnapshots
from amber.services.snapshots import SnapshotFilter, resolve, select

REWRITE_TAG = "rewrite"


@dataclass
class RewriteRequest:
    excludes: list[str] = field(default_factory=list)  # backup's --exclude rules
    sha256: list[bytes] = field(default_factory=list)  # files with this content, under any name
    snapshot_ids: list[str] = field(default_factory=list)  # none: every snapshot the filter selects
    filter: SnapshotFilter = field(default_factory=SnapshotFilter)
    forget: bool = False
    dry_run: bool = False
    before_forget: Callable[[Erasable], None] | None = None  # purge keeps what must go, before it goes


@dataclass
class SnapshotRewrite:
    old_id: str
    new_id: str  # "" in a dry run, or when the snapshot became empty
    removed: list[RemovedEntry]
    new_tree: bytes = b""  # the rewrite's root (in a dry run: as it would be)
    emptied: bool = False  # every backup path was excluded: no rewrite written
    flags: list[str] = field(default_factory=list)  # "suspicious", "acked"

    @property
    def files(self) -> int:
        return sum(r.files for r in self.removed)

    @property
    def bytes(self) -> int:
        return sum(r.bytes for r in self.removed)


@dataclass
class RewriteResult:
    dry_run: bool = False
    examined: int = 0
    rewritten: list[SnapshotRewrite] = field(default_factory=list)  # snapshots something was left out of
    forgotten: list[str] = field(default_factory=list)  # originals removed
    damaged: list[tuple[str, AmberError]] = field(default_factory=list)  # unreadable: left alone
    erasable: Erasable = field(default_factory=Erasable)
    load_tree: Callable[[bytes], Tree] | None = None  # reads stored trees and, in a dry run, unwritten ones

    @property
    def mapping(self) -> dict[str, str]:
        return {r.old_id: r.new_id for r in self.rewritten}


def rewrite(repo: Repository, req: RewriteRequest) -> RewriteResult:
    """Plan and (unless a dry run) write the rewrites, then forget the originals if asked."""
    if req.forget and not req.dry_run:
        refuse_if_append_only(repo, "rewrite --forget")
    excluded = exclusion(req.excludes, req.sha256)
    with shared_unless_held(repo):
        result = RewriteResult(dry_run=req.dry_run)
        chosen = _chosen(repo, req, result)
        result.examined = len(chosen)
        rewriter = TreeRewriter(repo, excluded, req.dry_run)
        for sid, snap in chosen:
            repo.cancel.check()  # a safe point: nothing is referenced yet
            new_root, removed = rewriter.rewrite(snap.tree)
            kept_paths = [p for p in snap.paths if not path_excluded(req.excludes, p)]
            if new_root == snap.tree and len(kept_paths) == len(snap.paths):
                continue
            result.rewritten.append(SnapshotRewrite(sid, "", removed, new_root, emptied=not kept_paths,
                                                    flags=_flags(snap)))  # fmt: skip
        result.erasable = rewriter.erasable
        result.load_tree = rewriter.load_tree
        if req.dry_run or not result.rewritten:
            return result
        repo.blobs.flush()  # packs, then index: the trees before the snapshots that need them
        snaps = dict(chosen)
        own = OwnSnapshots(repo.id)
        trusted = own.ids()
        mapping: dict[str, str] = {}
        done = _earlier_rewrites(repo)
        for entry in result.rewritten:
            if entry.emptied:
                continue
            repo.cancel.check()
            new = _rewritten(snaps[entry.old_id], entry, entry.new_tree, req, mapping)
            twin = done.get((new.original or "", new.tree))
            entry.new_id = mapping[entry.old_id] = twin or repo.save_snapshot(new)
            if entry.old_id in trusted:  # this host wrote the original: the rewrite is as trusted
                own.record(entry.new_id)
        if req.forget and req.before_forget is not None:
            req.before_forget(result.erasable)
        if req.forget:  # only now: every rewrite is durable
            for entry in result.rewritten:
                try:
                    repo.remove_snapshot(entry.old_id)
                except ObjectNotFound:
                    continue  # a concurrent forget was faster
                result.forgotten.append(entry.old_id)
    return result


def _earlier_rewrites(repo: Repository) -> dict[tuple[str, bytes], str]:
    """(identity, tree) -> snapshot ID: a rewrite an interrupted run already wrote is used again."""
    return {(s.original, s.tree): sid for sid, s in repo.snapshots([]).items() if s.original}


def _chosen(repo: Repository, req: RewriteRequest, result: RewriteResult) -> list[tuple[str, Snapshot]]:
    """The snapshots to look at, oldest first (so a rewritten parent is known before its children)."""
    if not req.snapshot_ids:
        return select(repo, req.filter, result.damaged)
    chosen: dict[str, Snapshot] = {}
    for ref in req.snapshot_ids:  # an ID prefix, or ``latest`` (of the filter's snapshots)
        sid, snap = resolve(repo, ref, req.filter)
        chosen[sid] = snap
    return sorted(chosen.items(), key=lambda item: (item[1].datetime, item[0]))


def _flags(snap: Snapshot) -> list[str]:
    return [name for tag, name in ((SUSPICIOUS_TAG, "suspicious"), (ACKED_TAG, "acked")) if tag in snap.tags]


def _rewritten(
    snap: Snapshot, entry: SnapshotRewrite, root: bytes, req: RewriteRequest, mapping: dict[str, str]
) -> Snapshot:
    patterns = req.excludes

    def keep(texts: list[str]) -> list[str]:
        return [t for t in texts if not _mentions(patterns, t)]

    summary = snap.summary
    counts = msgspec.structs.replace(
        summary,
        total_files=max(0, summary.total_files - entry.files),
        total_bytes=max(0, summary.total_bytes - entry.bytes),
        dirs=max(0, summary.dirs - sum(r.dirs for r in entry.removed)),
    )
    if summary.anomaly is not None:
        evidence = msgspec.structs.replace(summary.anomaly, examples=keep(summary.anomaly.examples),
                                           top_dirs=keep(summary.anomaly.top_dirs))  # fmt: skip
        counts = msgspec.structs.replace(counts, anomaly=evidence)
    tags = snap.tags if req.forget or REWRITE_TAG in snap.tags else sorted([*snap.tags, REWRITE_TAG])
    return msgspec.structs.replace(
        snap,
        tree=root,
        paths=[p for p in snap.paths if not path_excluded(patterns, p)],
        tags=tags,
        parent=mapping.get(snap.parent) or snap.parent,
        skipped=keep(snap.skipped),
        changed_during_read=keep(snap.changed_during_read),
        summary=counts,
        original=snap.original or entry.old_id,
    )


def _mentions(patterns: list[str], text: str) -> bool:
    """A recorded line names an excluded path: ``/a/b``, ``why: /a/b`` or ``/a/b (3)``."""
    for word in (text, text.partition(": ")[2], text.rpartition(" (")[0]):
        if word.startswith("/") and path_excluded(patterns, word):
            return True
    return False
