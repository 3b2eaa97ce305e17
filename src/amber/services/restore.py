"""The restore use case."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field

from amber.engine.patterns import PathMatcher
from amber.engine.progress import Progress
from amber.engine.restorer import RestoreOptions, Restorer, RestoreResult
from amber.engine.treewalk import lookup
from amber.errors import AmberError, IntegrityError, UsageError, from_os_error
from amber.repository import Repository
from amber.services.snapshots import SnapshotFilter, resolve, split_ref
from amber.storage.faults import FaultInjectingBackend
from amber.storage.local import LocalBackend
from amber.storage.ratelimit import RateLimitedBackend
from amber.storage.url import find_layer


@dataclass
class RestoreRequest:
    ref: str  # ID[:SUBPATH] or latest[:SUBPATH]
    target: str
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    verify: bool = False
    filter: SnapshotFilter = field(default_factory=SnapshotFilter)


def restore(repo: Repository, req: RestoreRequest, progress: Progress | None = None) -> RestoreResult:
    ref, sub = split_ref(req.ref)
    _, snap = resolve(repo, ref, req.filter)
    options = RestoreOptions(PathMatcher(req.include), PathMatcher(req.exclude), req.verify)
    options.processes = restore_processes(repo)
    progress = progress or repo.events
    restorer = Restorer(repo.load_tree, repo.blobs, options, progress, repo.key.blob_id, cancel=repo.cancel)
    _make_target(os.path.abspath(req.target))
    target = os.fsencode(os.path.abspath(req.target))
    node, tree_id = lookup(repo.load_tree, snap.tree, os.fsencode(sub))
    if node is not None and node.type != "dir":
        return restorer.restore(iter([(b"/" + node.name, node)]), target)
    if not tree_id:  # an empty directory
        return restorer.restore(iter([]), target)
    return restorer.restore_tree(tree_id, target)


def restore_processes(repo: Repository) -> int:
    """Forked writers for a repository on a local disk, one per core (at most 2); else threads.

    Threads share one interpreter lock: a threaded restore of many small files uses
    about one core. Remote backends are bound by the network and keep connections a
    fork cannot share, and a wrapper that limits rates or injects faults must see every
    request: these keep the threads.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cores < 2 or not hasattr(os, "fork") or find_layer(repo.backend, LocalBackend) is None:
        return 1
    if any(find_layer(repo.backend, wrapper) for wrapper in (RateLimitedBackend, FaultInjectingBackend)):
        return 1
    return 2


def _make_target(target: str) -> None:
    """Create the target first, so a bad one is named (the restorer's errors carry bytes paths)."""
    try:
        os.makedirs(target, exist_ok=True)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EEXIST):
            raise UsageError(f"cannot create restore target {target}: {exc.strerror}") from exc
        raise from_os_error(exc, f"restore target {target}") from exc


def raise_if_damaged(result: RestoreResult) -> None:
    """Exit 14 when stored data was bad; exit 1 when only the target refused something."""
    if result.damaged:
        raise IntegrityError(f"{result.damaged} file(s) could not be restored intact")
    if result.errors:
        raise AmberError(f"{len(result.errors)} item(s) could not be created in the target")
