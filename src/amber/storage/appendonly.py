"""Append-only: a backend wrapper that adds objects but never deletes or overwrites one.

Clients of an append-only repository (or clients opened with an append-only key)
see their backend through this wrapper. New objects may be saved; saving onto a
name that already exists and removing anything are refused with
``AppendOnlyViolation``. Lock files are the one exception: a lease lock must be
refreshed (new name, then the old one removed) and released.

The check runs in the client, so it protects against mistakes and against a
compromised *amber* process, not against someone who can delete files on the
storage directly; see docs/design.md, "Append-only mode".
"""

from __future__ import annotations

from amber.errors import AppendOnlyViolation, ObjectNotFound
from amber.storage.base import FileType, Handle
from amber.storage.forwarding import ForwardingBackend

MUTABLE = frozenset({FileType.LOCK})  # leases are rewritten and removed by their holder


def _describe(handle: Handle) -> str:
    return handle.type.value if handle.type is FileType.CONFIG else f"{handle.type.value}/{handle.name}"


class AppendOnlyBackend(ForwardingBackend):
    """Wraps ``inner``: ``save`` of a new name and every read pass through; deletes are refused."""

    passes_mapped_reads = True  # loads unchanged (a range that fails to map is loaded through this layer)

    def save(self, handle: Handle, data: bytes | bytearray | memoryview) -> None:
        if handle.type not in MUTABLE and self._present(handle):
            raise AppendOnlyViolation(f"append-only repository: refusing to overwrite {_describe(handle)}")
        self.inner.save(handle, data)

    def _present(self, handle: Handle) -> bool:
        try:
            self.inner.stat(handle)
        except ObjectNotFound:
            return False
        return True

    def remove(self, handle: Handle) -> None:
        if handle.type not in MUTABLE:
            raise AppendOnlyViolation(f"append-only repository: refusing to delete {_describe(handle)}")
        self.inner.remove(handle)
