"""Ranges of local files mapped into memory instead of copied, in processes that may map.

A load copies its range from the page cache into a new buffer, and a new process
faults in every page of that buffer once. For a restore's forked workers, which each
read a few packs, the copy and the faults cost a twentieth of the restore's CPU
(design §15). A mapped range is read where it lies. Its risk: a file that shrinks
while mapped kills its reader with SIGBUS. So:

- only a process that called :func:`allow_in_this_process` maps: the restore's forked
  workers, whose death is contained (their files are reported as not restored, and a
  second run resumes them); every other process loads;
- only a backend that maps (``RangeMapper``: local files) maps, and only through
  wrappers that declare reads unchanged (``passes_mapped_reads``): a rate limit or
  injected faults are never bypassed;
- a range that cannot be mapped or read in (a missing file, an I/O error) is loaded
  instead, through every wrapper, so its error is the load's.

What a caller reads from a mapping is checked as a loaded range is (each blob
authenticated, its ciphertext read once, and checked against its ID): a file
changed while mapped fails those checks like a damaged one.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from amber.storage.base import Backend, Handle

_MADV_POPULATE_READ = 22  # Linux 5.14: fault the whole range in with one call
_allowed = False


def allow_in_this_process() -> None:
    """This process may die of SIGBUS when a mapped file shrinks: its death is contained."""
    global _allowed
    _allowed = True


class MappedRange:
    """Part of an open file, mapped read-only and private, as ``view``."""

    def __init__(self, fd: int, size: int, offset: int, length: int) -> None:
        """Map ``length`` bytes from ``offset`` of ``fd`` (``size`` bytes), cut at its end.

        OSError when it cannot be mapped or its pages cannot be read in.
        """
        base = offset - offset % mmap.ALLOCATIONGRANULARITY
        end = min(size, offset + length)
        self._map: mmap.mmap | None = None
        if end <= offset:
            self.view = memoryview(b"")
            return
        self._map = mmap.mmap(fd, end - base, mmap.MAP_PRIVATE, mmap.PROT_READ, offset=base)
        try:
            _read_in(self._map)
        except OSError:
            self._map.close()
            raise
        self.view = memoryview(self._map)[offset - base :]

    def close(self) -> None:
        """Unmap, or leave it to go with the last view of it a caller still holds."""
        self.view.release()
        if self._map is not None:
            with contextlib.suppress(BufferError):
                self._map.close()


def _read_in(mapped: mmap.mmap) -> None:
    """Read the pages in now: one call instead of a fault per page (and an I/O error here,
    not a SIGBUS later). Kernels before 5.14 are asked to read ahead."""
    try:
        mapped.madvise(_MADV_POPULATE_READ)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        mapped.madvise(mmap.MADV_WILLNEED)


@runtime_checkable
class RangeMapper(Protocol):
    def map_range(self, handle: Handle, offset: int, length: int) -> MappedRange | None:
        """The range mapped (cut at the file's end), or None when it cannot be (missing,
        unreadable, not mappable): the caller loads it and gets the load's answer."""


def mapper_of(backend: Backend) -> RangeMapper | None:
    """The layer of ``backend`` that maps for it, past wrappers that pass mapped reads on."""
    layer: object = backend
    while getattr(layer, "passes_mapped_reads", False):
        layer = getattr(layer, "inner")  # noqa: B009  (wrappers keep ``inner``)
    return layer if isinstance(layer, RangeMapper) else None


@contextlib.contextmanager
def load_range(backend: Backend, handle: Handle, offset: int, length: int) -> Iterator[memoryview]:
    """``length`` bytes of ``handle`` from ``offset``, cut at its end: mapped when this process
    may map and the backend can, else loaded. Views of it are valid inside the ``with``."""
    mapper = mapper_of(backend) if _allowed else None
    mapped = mapper.map_range(handle, offset, length) if mapper is not None else None
    if mapped is None:
        yield memoryview(backend.load(handle, offset, length))
        return
    try:
        yield mapped.view
    finally:
        mapped.close()


def map_file_range(path: str, offset: int, length: int) -> MappedRange | None:
    """``MappedRange`` of the file at ``path``, cut at the size of the file opened, or None
    when it cannot be opened, mapped or read in."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return MappedRange(fd, os.fstat(fd).st_size, offset, length)
    except (OSError, ValueError, OverflowError):  # OverflowError: a negative offset
        return None
    finally:
        os.close(fd)
