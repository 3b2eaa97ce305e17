"""Read-only: a backend wrapper that refuses every write and delete.

Commands that only read and take no lock (``snapshots``, ``ls``, ``find``,
``diff``, ``manifest``) open the repository through it, so a bug on a read path
cannot change a repository. Commands that take a lease lock write lock files and
are not wrapped. The refusal is a ``PermissionDenied`` naming the object.
"""

from __future__ import annotations

from amber.errors import PermissionDenied
from amber.storage.base import Handle
from amber.storage.forwarding import ForwardingBackend
from amber.storage.layout import describe


class ReadOnlyBackend(ForwardingBackend):
    """Loads, stats and listings pass through; ``create``, ``save`` and ``remove`` are refused."""

    passes_mapped_reads = True  # loads unchanged (a range that fails to map is loaded through this layer)

    def create(self) -> None:
        raise PermissionDenied(f"read-only access to {self.location}: refusing to create a repository")

    def save(self, handle: Handle, data: bytes | bytearray | memoryview) -> None:
        raise PermissionDenied(f"read-only access to {self.location}: refusing to write {describe(handle)}")

    def remove(self, handle: Handle) -> None:
        raise PermissionDenied(f"read-only access to {self.location}: refusing to delete {describe(handle)}")
