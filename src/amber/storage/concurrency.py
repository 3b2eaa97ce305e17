"""A bounded number of requests in flight at once, as a backend wrapper.

Remote backends size their connection pools to one more than this number, so
this is also the number of connections that uploads and downloads can take.
Lock files are exempt (restic's ``typeDependentLimit``): a lease refresh must
never wait behind pack uploads, or a slow upload could let the lease lapse.
``open_backend`` puts this layer *under* the retry layer, so a backoff sleep
holds no slot. ``list`` is read whole inside one slot: a caller that loads
objects while iterating a listing must not hold a slot.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

from amber.storage.base import Backend, FileInfo, FileType, Handle, RetentionBackend
from amber.storage.forwarding import ForwardingBackend
from amber.storage.retention import wrap_retention

EXEMPT = frozenset({FileType.LOCK})  # small, rare and time-critical: never queued


class ConcurrencyLimitedBackend(ForwardingBackend):
    passes_mapped_reads = True  # loads unchanged (a range that fails to map is loaded through this layer)

    def __init__(self, inner: Backend, connections: int) -> None:
        if connections < 1:
            raise ValueError("connections must be at least 1")
        super().__init__(inner)
        self.connections = connections
        self._slots = threading.BoundedSemaphore(connections)

    def _slot(self, type: FileType | None = None) -> contextlib.AbstractContextManager[object]:
        return contextlib.nullcontext() if type in EXEMPT else self._slots

    def create(self) -> None:
        with self._slot():
            self.inner.create()

    def exists(self) -> bool:
        with self._slot():
            return self.inner.exists()

    def save(self, handle: Handle, data: bytes | bytearray | memoryview) -> None:
        with self._slot(handle.type):
            self.inner.save(handle, data)

    def load(
        self, handle: Handle, offset: int = 0, length: int | None = None, *, limit: int | None = None
    ) -> bytes:
        with self._slot(handle.type):
            return self.inner.load(handle, offset, length, limit=limit)

    def stat(self, handle: Handle) -> FileInfo:
        with self._slot(handle.type):
            return self.inner.stat(handle)

    def list(self, type: FileType) -> Iterator[FileInfo]:
        with self._slot(type):
            listed = list(self.inner.list(type))
        yield from listed

    def remove(self, handle: Handle) -> None:
        with self._slot(handle.type):
            self.inner.remove(handle)

    def retention_capability(self) -> RetentionBackend | None:
        """Object Lock calls take a connection slot like every other request."""

        def in_slot(_what: str, fn: Callable[[], bool]) -> bool:
            with self._slots:
                return fn()

        return wrap_retention(self.inner, in_slot)
