"""A pass-through backend wrapper: subclasses override only what they change.

Every wrapper keeps the layer it wraps in ``inner`` (``storage.url.find_layer``
and the Object Lock capability walk down through it) and shows its location.
"""

from __future__ import annotations

from collections.abc import Iterator

from amber.storage.base import Backend, FileInfo, FileType, Handle


class ForwardingBackend:
    """Forwards every request to ``inner`` unchanged."""

    # True in a wrapper whose loads are its inner layer's unchanged: ranges of ``inner`` may then
    # be mapped past it (``storage.mapped``). False by default, so a wrapper that limits or
    # changes reads is never bypassed.
    passes_mapped_reads = False

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.location = inner.location

    def create(self) -> None:
        self.inner.create()

    def exists(self) -> bool:
        return self.inner.exists()

    def save(self, handle: Handle, data: bytes | bytearray | memoryview) -> None:
        self.inner.save(handle, data)

    def load(
        self, handle: Handle, offset: int = 0, length: int | None = None, *, limit: int | None = None
    ) -> bytes:
        return self.inner.load(handle, offset, length, limit=limit)

    def stat(self, handle: Handle) -> FileInfo:
        return self.inner.stat(handle)

    def list(self, type: FileType) -> Iterator[FileInfo]:
        return self.inner.list(type)

    def remove(self, handle: Handle) -> None:
        self.inner.remove(handle)

    def close(self) -> None:
        self.inner.close()
