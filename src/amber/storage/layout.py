"""Where each object lives inside a repository location, shared by the remote backends.

The same layout as :class:`~amber.storage.local.LocalBackend` (design.md §3), so
a repository can be moved between backends with any file copy tool.
"""

from __future__ import annotations

from collections.abc import Iterator

from amber.errors import ObjectNotFound, StorageError
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
