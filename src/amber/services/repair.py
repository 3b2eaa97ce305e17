"""The repair use cases: rebuild the index, salvage damaged snapshots.

Both take a maintenance lock (like prune) unless the caller holds an exclusive
or maintenance lock already, and both refuse in append-only mode, since they
remove index files or snapshots.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from amber.engine.progress import Progress
from amber.engine.repairer import IndexRepairResult, SnapshotRepairer, SnapshotRepairResult, rebuild_index
from amber.errors import AppendOnlyViolation
from amber.repository import Repository

__all__ = ["IndexRepairResult", "SnapshotRepairResult", "repair_index", "repair_snapshots"]

T = TypeVar("T")


@contextmanager
def maintenance(repo: Repository, what: str) -> Iterator[None]:
    """Hold a maintenance lock for ``what`` unless one (or an exclusive lock) is held already."""
    if getattr(repo, "append_only", False):
        raise AppendOnlyViolation(f"repository is append-only: {what} refused")
    if any(lk.exclusive or lk.maintenance for lk in repo.held_locks):
        yield
        return
    with repo.lock(maintenance=True):
        yield


def _locked(repo: Repository, what: str, fn: Callable[[], T]) -> T:
    with maintenance(repo, what):
        return fn()


def repair_index(repo: Repository, progress: Progress | None = None) -> IndexRepairResult:
    return _locked(repo, "repair index", lambda: rebuild_index(repo, progress or repo.events))


def repair_snapshots(repo: Repository, dry_run: bool = False) -> SnapshotRepairResult:
    if dry_run:  # reads only: a shared lock is enough, and append-only is fine
        with repo.lock():
            return SnapshotRepairer(repo, dry_run=True).run()
    return _locked(repo, "repair snapshots", lambda: SnapshotRepairer(repo).run())
