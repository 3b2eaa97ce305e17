"""The storage Protocol every backend implements."""

from __future__ import annotations

import datetime
import enum
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class FileType(enum.Enum):
    """Kinds of stored files; the value is the directory they live in."""

    CONFIG = "config"
    KEY = "keys"
    PACK = "data"
    INDEX = "index"
    SNAPSHOT = "snapshots"
    LOCK = "locks"
    AUDIT = "audit"  # replicated audit-log segments
    RUNS = "runs"  # run records of each host's jobs, for the fleet view
    WAL = "wal"  # archived PostgreSQL WAL files, named by cluster and WAL file name (design §12d)


@dataclass(frozen=True, slots=True)
class Handle:
    type: FileType
    name: str = ""


@dataclass(frozen=True, slots=True)
class FileInfo:
    name: str
    size: int


@runtime_checkable
class Backend(Protocol):
    """A flat store of named immutable files.

    ``save`` is atomic: a reader sees the whole file or nothing. Errors are
    amber errors (``ObjectNotFound``, ``DiskFull``, ``PermissionDenied``,
    ``StorageError``), never raw vendor exceptions.
    """

    location: str

    def create(self) -> None:
        """Create the layout of an empty repository (directories, buckets)."""

    def exists(self) -> bool:
        """True when a repository config is present."""

    def save(self, handle: Handle, data: bytes | bytearray | memoryview) -> None: ...

    def load(
        self, handle: Handle, offset: int = 0, length: int | None = None, *, limit: int | None = None
    ) -> bytes:
        """``length`` bytes from ``offset`` (to the end when None), cut short at the end.

        With ``limit``, a load that would return more than ``limit`` bytes raises
        ``ObjectTooLarge`` instead, having read at most ``limit + 1`` bytes: a
        planted multi-GiB object costs nothing (design §3, "Size limits").
        """

    def stat(self, handle: Handle) -> FileInfo: ...

    def list(self, type: FileType) -> Iterator[FileInfo]: ...

    def remove(self, handle: Handle) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class RetentionBackend(Protocol):
    """A backend that keeps objects immutable until a date (S3 Object Lock).

    Wrappers keep the layer they wrap in ``inner``; ``storage.url.find_layer``
    finds this capability under them.
    """

    def retention_days(self) -> int:
        """Days of retention new objects get; 0 when retention is not in use."""

    def extend_retention(self, handle: Handle, until: datetime.datetime) -> bool:
        """Keep ``handle`` immutable at least until ``until``; False if it already was."""
