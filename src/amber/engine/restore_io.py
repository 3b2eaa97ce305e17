"""Restored bytes: where they come from, and how they are written (holes for zero blocks,
whole writes, a read buffer per thread)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Protocol

from amber.errors import IntegrityError
from amber.repository import Location

Buffer = bytes | bytearray | memoryview

_local = threading.local()

OPEN_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # never a symlink; never block on a planted fifo
CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | OPEN_FLAGS  # and never anything already there


class BlobSource(Protocol):
    """Where a restore reads blobs: a repository's blob store."""

    def locate(self, blob_id: bytes) -> Location: ...

    def stream_from_pack(
        self, pack: str, wanted: list[tuple[bytes, Location]]
    ) -> Iterator[tuple[bytes, bytes | memoryview | IntegrityError]]:
        """Each wanted blob's verified plaintext, in pack order; a view of a buffer the next
        blob reuses, so it is written before the next is read."""
        ...


def read_buffer() -> memoryview:
    buf: memoryview | None = getattr(_local, "buf", None)
    if buf is None:
        buf = _local.buf = memoryview(bytearray(1 << 20))
    return buf


def pwrite(fd: int, view: memoryview, pos: int) -> None:
    while view:
        n = os.pwrite(fd, view, pos)
        view, pos = view[n:], pos + n


def pwrite_nonzero(fd: int, data: Buffer, offset: int) -> int:
    """Write ``data`` at ``offset``, zero blocks left as holes; returns the end of the last byte written."""
    view = memoryview(data)
    if 0 not in bytes(view[-offset % _BLOCK :: _BLOCK]):  # no block starts with a zero: one write (most)
        pwrite(fd, view, offset)
        return offset + len(view)
    written_end = offset
    for start, end in nonzero_extents(view, offset):
        pwrite(fd, view[start:end], offset + start)
        written_end = offset + end
    return written_end


def is_zero(data: Buffer) -> bool:
    view = memoryview(data)
    return bool(view) and view[0] == 0 and view[-1] == 0 and view == bytes(len(view))


_BLOCK = 4096
_ZERO_BLOCK = bytes(_BLOCK)


def nonzero_extents(data: Buffer, offset: int) -> Iterator[tuple[int, int]]:
    """(start, end) ranges of ``data`` to write, leaving file-block-aligned zero runs as holes.

    ``data`` lies at ``offset`` in the file. A chunk that is only partly zero (data
    followed by a long zero run: chunkers cut zero runs at their maximum size) would
    otherwise fill the hole.
    """
    view = memoryview(data)
    first = -offset % _BLOCK  # first block boundary of the file inside data
    heads = bytes(view[first::_BLOCK])  # each aligned block's first byte: a zero block starts with 0
    i = heads.find(0)
    start = 0
    while i >= 0:
        pos = first + i * _BLOCK
        if pos + _BLOCK > len(view):
            break
        if view[pos : pos + _BLOCK] == _ZERO_BLOCK:
            if pos > start:
                yield start, pos
            start = pos + _BLOCK
        i = heads.find(0, i + 1)
    if start < len(view):
        yield start, len(view)
