"""Erasure requests across the places a backup lives: ``amber purge`` and ``purge --everywhere``.

Around the purge use case (``services.purge``) this adds what needs the local
machine and the config:

* a **journal** of the blob IDs still to erase (``<state dir>/purge-<repo id>.json``,
  IDs only, never content), written before any original snapshot is removed and
  deleted once the purge is verified, so a purge run again after a crash still
  erases what the first run had rewritten away;
* the **catalog**, a local cache that names files in clear: it is dropped and
  built again from the remaining snapshots (a reconcile would keep the purged
  names in its name table and in SQLite's free pages);
* ``--everywhere``: the same purge on every repository the config names and
  every place ``amber copy`` recorded a copy to (the set ``status --copies``
  compares), each verified on its own. A destination that refuses (append-only,
  Object Lock), fails or cannot be reached is reported, and the others go on.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from amber.catalog import store
from amber.catalog.ingest import sync
from amber.errors import (
    AmberError,
    CatalogError,
    DiskFull,
    Interrupted,
    PermissionDenied,
    PurgeRefused,
    RepositoryNotFound,
    StorageError,
    from_os_error,
)
from amber.ops.config.model import Config
from amber.ops.config.sections import default_state_dir
from amber.ops.config.target import same_place
from amber.ops.copies_status import StateHistory, recorded_replicas, replicas_from_config
from amber.ops.private import write_private
from amber.repository import Repository
from amber.services import purge as purge_service
from amber.services import session
from amber.services.context import OperationContext
from amber.storage.url import BackendOptions

PURGED, REFUSED, FAILED, UNREACHABLE, PLANNED = "purged", "refused", "failed", "unreachable", "dry run"


def journal_path(state_dir: str, repo_id: str) -> str:
    return os.path.join(state_dir, f"purge-{repo_id}.json")


def _read_journal(path: str) -> set[bytes]:
    try:
        with open(path, encoding="ascii") as f:
            return {bytes.fromhex(h) for h in json.load(f).get("blobs", [])}
    except FileNotFoundError:
        return set()
    except (OSError, ValueError, AttributeError) as exc:
        raise AmberError(f"purge journal {path} cannot be read ({exc}); remove it, then purge again") from exc


def purge_repository(
    repo: Repository, req: purge_service.PurgeRequest, state_dir: str | None = None,
    catalog_enabled: bool = True, note: Callable[[str], None] | None = None,
) -> purge_service.PurgeResult:  # fmt: skip
    """One repository, already open (not locked): journal, purge, verify, then the catalog."""
    path = journal_path(state_dir or default_state_dir(), repo.id)
    req.targets |= _read_journal(path)

    def keep(targets: set[bytes]) -> None:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        write_private(path, json.dumps({"blobs": sorted(t.hex() for t in targets)}).encode())

    if not req.dry_run:
        req.on_targets = keep
    result = purge_service.purge(repo, req, note)
    if result.dry_run:
        return result
    if result.verified:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    rebuild_catalog(repo, catalog_enabled)
    return result


def rebuild_catalog(repo: Repository, enabled: bool) -> bool:
    """Drop this repository's catalog and, if it was kept, build it again. True when it was rebuilt."""
    if not store.catalog_path(repo.id).exists():
        return False
    store.drop(repo.id)
    if not store.enabled(enabled):
        return False
    with contextlib.suppress(CatalogError):
        conn, _ = store.open_catalog(repo.id)
        try:
            sync(conn, repo)
        finally:
            conn.close()
        return True
    return False


@dataclass(frozen=True)
class Place:
    name: str
    location: str
    passwords: session.PasswordSource
    options: BackendOptions | None = None


@dataclass
class PlaceOutcome:
    place: Place
    status: str
    result: purge_service.PurgeResult | None = None
    error: str = ""
    exit_code: int = 0

    def audit(self, req: purge_service.PurgeRequest) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.place.name, "status": self.status}
        if self.error:
            out["error"] = self.error
        if self.result is not None:
            out |= self.result.audit(req.patterns, req.sha256)
        return out


def places(
    config: Config | None, primary: Place, passwords: session.PasswordSource,
    base: BackendOptions | None = None,
) -> list[Place]:  # fmt: skip
    """``primary`` first, then every configured repository and recorded copy destination, once each."""
    found = [primary]
    seen = {_place(primary.location)}
    if config is None:
        return found
    known = replicas_from_config(config, passwords, base)
    history = StateHistory(config.state.path)
    for src in [*known, *recorded_replicas(history, known, passwords)]:
        where = _place(src.location)
        if where in seen:
            continue
        seen.add(where)
        found.append(Place(src.replica.name, src.location, src.passwords, src.options))
    return found


def _place(location: str) -> str:
    try:
        return same_place(location)
    except AmberError:
        return location


def purge_everywhere(
    targets: list[Place], req: purge_service.PurgeRequest, ctx: OperationContext,
    state_dir: str | None = None, catalog_enabled: bool = True, note: Callable[[str], None] | None = None,
) -> list[PlaceOutcome]:  # fmt: skip
    """The same purge on each place in turn; one place's failure never stops the next."""
    outcomes = []
    for place in targets:
        ctx.cancel.check()
        one = purge_service.PurgeRequest(req.patterns, req.sha256, req.dry_run)
        say = (lambda m, n=place.name: note(f"{n}: {m}")) if note else None
        try:
            with session.opened(place.location, place.passwords, lock=False, options=place.options,
                                ctx=ctx) as repo:  # fmt: skip
                result = purge_repository(repo, one, state_dir, catalog_enabled, say)
        except PurgeRefused as exc:
            outcomes.append(PlaceOutcome(place, REFUSED, error=exc.message, exit_code=exc.exit_code))
            continue
        except Interrupted:  # stopped by a signal: stop everything
            raise
        except OSError as exc:
            err = from_os_error(exc, place.location)
            outcomes.append(PlaceOutcome(place, UNREACHABLE, error=err.message, exit_code=err.exit_code))
            continue
        except AmberError as exc:  # as `copy` to several places judges them (services/replicate.py)
            offline = isinstance(exc, RepositoryNotFound | StorageError) and not isinstance(
                exc, DiskFull | PermissionDenied)  # fmt: skip
            outcomes.append(PlaceOutcome(place, UNREACHABLE if offline else FAILED, error=exc.message,
                                         exit_code=exc.exit_code))  # fmt: skip
            continue
        status = PLANNED if req.dry_run else (PURGED if result.verified else FAILED)
        why = "" if status != FAILED else "purged data is still stored (verification failed)"
        outcomes.append(PlaceOutcome(place, status, result, why, 0 if status != FAILED else 39))
    return outcomes


def exit_code(outcomes: list[PlaceOutcome]) -> int:
    """0 when every place was purged (or planned); 38 when the only problem is refusals; else 39."""
    bad = [o for o in outcomes if o.status in (REFUSED, FAILED, UNREACHABLE)]
    if not bad:
        return 0
    return 38 if all(o.status == REFUSED for o in bad) else 39
