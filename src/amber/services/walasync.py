"""``wal-push --async``: one call archives every WAL file PostgreSQL has ready (design §12d).

PostgreSQL calls ``archive_command`` once per file, one at a time. With ``--async``
(or ``AMBER_WAL_ASYNC=1``) the call for file F pushes, in this one process with the key
opened once and under one lock, F and every other file that ``pg_wal/archive_status``
marks ``.ready`` (up to :data:`MAX_BATCH`): one pack stream and index file, a record
per file. For each file now durable it leaves a marker in a local spool directory
holding the file's size and SHA-256. When PostgreSQL then asks for one of those, the
call finds the marker, checks that the file still has that content, and exits 0
without opening the repository. A marker is written only after the record is durable,
so exit 0 still means what PostgreSQL needs. Markers of files no longer in ``pg_wal``
are removed on the next batch.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct

from amber.errors import UsageError
from amber.repository import Repository
from amber.services import walnames
from amber.services.keycache import write_private
from amber.services.own_snapshots import cache_root
from amber.services.walpush import push_files

MAX_BATCH = 64  # files per call: 1 GiB of 16 MiB segments
_MARK = struct.Struct(">Q32s")
_SUFFIX = ".ok"


def enabled(flag: bool) -> bool:
    return flag or os.environ.get("AMBER_WAL_ASYNC", "").strip().lower() in ("1", "on", "yes", "true")


def spool_dir(location: str, cluster: str) -> str:
    """``AMBER_WAL_SPOOL`` or the user's cache, per repository location and cluster."""
    base = os.environ.get("AMBER_WAL_SPOOL") or os.path.join(cache_root(), "wal-spool")
    where = hashlib.sha256(location.encode()).hexdigest()[:32]
    return os.path.join(base, where, walnames.check_cluster(cluster))


def already_pushed(spool: str, path: str) -> bool:
    """True when a batch archived this file's current content (size and SHA-256 match)."""
    try:
        with open(os.path.join(spool, os.path.basename(path) + _SUFFIX), "rb") as f:
            size, digest = _MARK.unpack(f.read(_MARK.size))
        if os.stat(path).st_size != size:
            return False
        with open(path, "rb") as f:
            same: bool = hashlib.file_digest(f, "sha256").digest() == digest
        return same
    except (OSError, struct.error):
        return False


def ready_paths(path: str, limit: int = MAX_BATCH) -> list[str]:
    """``path`` first, then the other files PostgreSQL marked ready beside it, in its order
    (timeline history files first, then by name), at most ``limit`` in all."""
    folder = os.path.dirname(path)
    asked = os.path.basename(path)
    try:
        marks = os.listdir(os.path.join(folder, "archive_status"))
    except OSError:
        return [path]
    names = []
    for mark in marks:
        name = mark.removesuffix(".ready")
        if name in (mark, asked):
            continue
        with contextlib.suppress(UsageError):
            names.append(walnames.parse(name))
    names.sort(key=lambda n: (n.kind != "history", n.file))
    return [path] + [os.path.join(folder, n.file) for n in names[: limit - 1]]


def mark_pushed(spool: str, pushed: list[tuple[str, int, bytes]]) -> None:
    """Markers for files now durable in the repository (name, size, SHA-256)."""
    for name, size, digest in pushed:
        write_private(os.path.join(spool, name + _SUFFIX), _MARK.pack(size, digest))


def forget_archived(spool: str, wal_dir: str) -> None:
    """Remove the markers of files PostgreSQL has since removed or recycled."""
    with contextlib.suppress(OSError):
        for entry in os.listdir(spool):
            if entry.endswith(_SUFFIX) and not os.path.exists(os.path.join(wal_dir, entry[: -len(_SUFFIX)])):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(spool, entry))


def push_ready(repo: Repository, cluster: str, path: str, spool: str) -> bool:
    """Archive ``path`` and the files ready after it; mark each one now durable. Raises what
    ``path``'s own push met (the others are retried when PostgreSQL asks for them)."""
    batch = push_files(repo, cluster, ready_paths(path))
    mark_pushed(spool, [(os.path.basename(p.path), p.size, p.sha256) for p in batch if p.error is None])
    forget_archived(spool, os.path.dirname(path))
    if batch[0].error is not None:
        raise batch[0].error
    return batch[0].stored
