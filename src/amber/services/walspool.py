"""The spool of ``wal-push --async``: which files a batch already archived (design §12d).

Light on purpose: a call whose file a batch already archived runs only this (no key,
no repository), so it imports only what the standard library starts with. See
:mod:`amber.services.walasync` for the batch itself.
"""

from __future__ import annotations

import hashlib
import os
import struct

MAX_BATCH = 64  # files per call: 1 GiB of 16 MiB segments
_MARK = struct.Struct(">Q32s")
_SUFFIX = ".ok"


def enabled(flag: bool) -> bool:
    return flag or os.environ.get("AMBER_WAL_ASYNC", "").strip().lower() in ("1", "on", "yes", "true")


def spool_dir(location: str, cluster: str) -> str:
    """``AMBER_WAL_SPOOL``, else ``$XDG_CACHE_HOME/amber/wal-spool``; per location and cluster."""
    base = os.environ.get("AMBER_WAL_SPOOL")
    if not base:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(cache, "amber", "wal-spool")
    where = hashlib.sha256(location.encode()).hexdigest()[:32]
    if not cluster or len(cluster) > 64 or not cluster.replace("-", "").replace("_", "").isalnum() \
            or not cluster.isascii():  # fmt: skip
        from amber.services.walnames import check_cluster

        check_cluster(cluster)  # raises its UsageError
    return os.path.join(base, where, cluster)


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
    from amber.errors import UsageError
    from amber.services import walnames

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
        try:
            names.append(walnames.parse(name))
        except UsageError:
            continue
    names.sort(key=lambda n: (n.kind != "history", n.file))
    return [path] + [os.path.join(folder, n.file) for n in names[: limit - 1]]


def mark_pushed(spool: str, pushed: list[tuple[str, int, bytes]]) -> None:
    """Markers for files now durable in the repository (name, size, SHA-256). A marker is
    written whole or not at all; a lost one only costs the next call a push (same content: 0)."""
    try:
        os.makedirs(spool, mode=0o700, exist_ok=True)
    except OSError:
        return  # no spool: every call pushes (and finds its file archived): slower, still right
    for name, size, digest in pushed:
        final = os.path.join(spool, name + _SUFFIX)
        tmp = f"{final}.tmp-{os.getpid()}"
        try:
            with open(tmp, "wb") as f:
                f.write(_MARK.pack(size, digest))
            os.replace(tmp, final)
        except OSError:
            _unlink(tmp)


def forget_archived(spool: str, wal_dir: str) -> None:
    """Remove the markers of files PostgreSQL has since removed or recycled."""
    try:
        entries = os.listdir(spool)
    except OSError:
        return
    for entry in entries:
        if entry.endswith(_SUFFIX) and not os.path.exists(os.path.join(wal_dir, entry[: -len(_SUFFIX)])):
            _unlink(os.path.join(spool, entry))


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        return  # not contextlib.suppress: contextlib costs ~9 ms of import on this path
