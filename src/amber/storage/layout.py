"""Where each object lives inside a repository location, shared by the remote backends.

The same layout as :class:`~amber.storage.local.LocalBackend` (design.md §3), so
a repository can be moved between backends with any file copy tool.
"""

from __future__ import annotations

from collections.abc import Iterator

from amber.errors import ObjectNotFound, ObjectTooLarge, StorageError
from amber.storage.base import Backend, FileInfo, FileType, Handle

TMP_PREFIX = ".tmp-"
NAMED_TYPES = [t for t in FileType if t is not FileType.CONFIG]


def object_path(handle: Handle) -> str:
    """``config``, ``data/ab/abcd...`` or ``<type dir>/<name>``; bad names are a StorageError."""
    if handle.type is FileType.CONFIG:
        return "config"
    name = handle.name
    if not name or "/" in name or "\\" in name or "\0" in name or name.startswith("."):
        raise StorageError(f"invalid object name {name!r}")
    if handle.type is FileType.PACK:
        return f"data/{name[:2]}/{name}"
    return f"{handle.type.value}/{name}"


def describe(handle: Handle) -> str:
    return handle.type.value if handle.type is FileType.CONFIG else f"{handle.type.value}/{handle.name}"


def fanout_dirs() -> list[str]:
    return [f"data/{i:02x}" for i in range(256)]


def list_config(backend: Backend) -> Iterator[FileInfo]:
    """``list(CONFIG)`` for object stores: the one config object, if it exists."""
    try:
        size = backend.stat(Handle(FileType.CONFIG)).size
    except ObjectNotFound:
        return
    yield FileInfo("", size)


def format_size(n: int) -> str:
    """``n`` bytes, short: ``6 GiB``, ``1.5 MiB``, ``300 bytes``."""
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"


def too_large(handle: Handle, limit: int, size: int | None = None) -> ObjectTooLarge:
    """The error for a bounded load (``load(..., limit=)``) of an object over ``limit``."""
    what = describe(handle) if handle.type is FileType.CONFIG else f"{handle.type.value}/{handle.name[:16]}"
    found = f"is {format_size(size)}" if size is not None else "is larger"
    return ObjectTooLarge(f"{what} {found}, over the {format_size(limit)} limit for {handle.type.value}")


def bounded_length(handle: Handle, size: int, offset: int, length: int | None, limit: int | None) -> int:
    """How many bytes a load of an object of ``size`` bytes returns; checks ``limit``.

    ``length`` is cut to what the object holds, so a caller asking for a huge
    range (a length read from a damaged index) never allocates it.
    """
    available = max(0, size - offset)
    n = available if length is None else max(0, min(length, available))
    if limit is not None and n > limit:
        raise too_large(handle, limit, size)
    return n
