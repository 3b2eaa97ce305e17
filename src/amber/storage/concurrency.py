"""A bounded number of requests in flight at once, as a backend wrapper.

Remote backends size their connection pools to the same number, so this is
also the number of connections. ``list`` is read whole inside one slot: a
caller that loads objects while iterating a listing must not hold a slot.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from amber.storage.base import Backend, FileInfo, FileType, Handle, RetentionBackend
from amber.storage.retention import wrap_retention


class ConcurrencyLimitedBackend:
    def __init__(self, inner: Backend, connections: int) -> None:
        if connections < 1:
            raise ValueError("connections must be at least 1")
        self.inner = inner
        self.location = inner.location
        self.connections = connections
        self._slots = threading.BoundedSemaphore(connections)

    def create(self) -> None:
        with self._slots:
            self.inner.create()

    def exists(self) -> bool:
        with self._slots:
            return self.inner.exists()

    def save(self, handle: Handle, data: bytes | bytearray | memoryview) -> None:
        with self._slots:
            self.inner.save(handle, data)

    def load(
        self, handle: Handle, offset: int = 0, length: int | None = None, *, limit: int | None = None
    ) -> bytes:
        with self._slots:
            return self.inner.load(handle, offset, length, limit=limit)

    def stat(self, handle: Handle) -> FileInfo:
        with self._slots:
            return self.inner.stat(handle)

    def list(self, type: FileType) -> Iterator[FileInfo]:
        with self._slots:
            listed = list(self.inner.list(type))
        yield from listed

    def remove(self, handle: Handle) -> None:
        with self._slots:
            self.inner.remove(handle)

    def close(self) -> None:
        self.inner.close()

    def retention_capability(self) -> RetentionBackend | None:
        """Object Lock calls take a connection slot like every other request."""

        def in_slot(_what: str, fn: Callable[[], bool]) -> bool:
            with self._slots:
                return fn()

        return wrap_retention(self.inner, in_slot)
