"""Multi-destination replication: one source, many destinations, each reported on its own.

Entry point for ``amber copy --to A --to B`` and for ``amber run`` (mirroring a
fresh snapshot to every configured destination)::

    statuses = replicate(source_repo, [snapshot_id], [Destination("usb", "/mnt/usb/amber", pw)])

A destination that cannot be reached (unplugged disk, missing mount, network
down: ``RepositoryNotFound``, ``StorageError``, ``OSError``) is reported as
``offline`` and does not stop the others. Nothing is remembered for catch-up:
the next run compares snapshot sets again, so whatever an offline destination
missed is copied then. Other failures (wrong password, locked, damaged source
data) are ``failed`` with the reason.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from amber.engine.copier import CopyOptions
from amber.engine.progress import Progress
from amber.errors import (
    AmberError,
    DiskFull,
    Interrupted,
    LeaseLost,
    PermissionDenied,
    RepositoryNotFound,
    StorageError,
    from_os_error,
)
from amber.repository import Repository
from amber.services import session
from amber.services.context import OperationContext
from amber.services.copy import CopyRequest, CopyResult, copy_snapshots
from amber.services.snapshots import SnapshotFilter
from amber.storage.url import BackendOptions

OK, OFFLINE, FAILED = "ok", "offline", "failed"


@dataclass
class Destination:
    location: str
    passwords: session.PasswordSource = field(default_factory=session.PasswordSource)
    name: str = ""  # a config name, e.g. "usb"; the location when empty
    options: BackendOptions | None = None  # a configured repository's backend options

    @property
    def label(self) -> str:
        return self.name or self.location


@dataclass
class DestinationStatus:
    name: str
    location: str
    status: str  # ok | offline | failed
    copied: list[tuple[str, str]] = field(default_factory=list)  # (source ID, destination ID)
    already: int = 0
    bytes_added: int = 0
    error: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == OK


def _one(
    source: Repository, req: CopyRequest, dest: Destination, options: CopyOptions | None,
    progress: Progress | None, ctx: OperationContext | None,
) -> DestinationStatus:  # fmt: skip
    status = DestinationStatus(dest.label, dest.location, OK)
    started = time.monotonic()
    try:
        with session.opened(dest.location, dest.passwords, options=dest.options, ctx=ctx) as dst:
            result: CopyResult = copy_snapshots(source, dst, req, options, progress)
        status.copied, status.already = result.copied, result.already
        status.bytes_added = result.stats.bytes_added
        if result.failed:
            status.status = FAILED
            status.error = "; ".join(f"{sid[:8]}: {why}" for sid, why in result.failed)
    except (DiskFull, PermissionDenied) as exc:
        status.status, status.error = FAILED, exc.message
    except (RepositoryNotFound, StorageError) as exc:
        status.status, status.error = OFFLINE, exc.message
    except OSError as exc:
        err = from_os_error(exc, dest.location)
        status.status = FAILED if isinstance(err, (DiskFull, PermissionDenied)) else OFFLINE
        status.error = err.message
    except (Interrupted, LeaseLost):
        raise  # the whole operation stops, not just this destination
    except AmberError as exc:
        status.status, status.error = FAILED, exc.message
    status.seconds = time.monotonic() - started
    return status


def replicate(
    source: Repository, snapshot_ids: Sequence[str], destinations: Sequence[Destination],
    snapshot_filter: SnapshotFilter | None = None, options: CopyOptions | None = None,
    progress: Progress | None = None, ctx: OperationContext | None = None,
) -> list[DestinationStatus]:  # fmt: skip
    """Copy ``snapshot_ids`` (all matching ``snapshot_filter`` when empty) to every destination.

    ``source`` must be open (and locked by the caller). Destinations are tried
    one after another; one failing never stops the rest.
    """
    req = CopyRequest(list(snapshot_ids), snapshot_filter or SnapshotFilter())
    return [_one(source, req, dest, options, progress, ctx) for dest in destinations]


def replicate_from(
    location: str, passwords: session.PasswordSource, snapshot_ids: Sequence[str],
    destinations: Sequence[Destination], snapshot_filter: SnapshotFilter | None = None,
    options: CopyOptions | None = None, progress: Progress | None = None,
    source_options: BackendOptions | None = None, ctx: OperationContext | None = None,
) -> list[DestinationStatus]:  # fmt: skip
    """Open the source (shared lock), then :func:`replicate`."""
    with session.opened(location, passwords, options=source_options, ctx=ctx) as source:
        return replicate(source, snapshot_ids, destinations, snapshot_filter, options, progress, ctx)
