"""Writing restored bytes: holes for zero blocks, whole writes, and a read buffer per thread."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

_local = threading.local()


def read_buffer() -> memoryview:
    buf: memoryview | None = getattr(_local, "buf", None)
    if buf is None:
        buf = _local.buf = memoryview(bytearray(1 << 20))
    return buf


def pwrite(fd: int, view: memoryview, pos: int) -> None:
    while view:
        n = os.pwrite(fd, view, pos)
        view, pos = view[n:], pos + n


def pwrite_nonzero(fd: int, data: bytes, offset: int) -> int:
    """Write ``data`` at ``offset``, zero blocks left as holes; returns the end of the last byte written."""
    written_end = offset
    view = memoryview(data)
    for start, end in nonzero_extents(data, offset):
        pwrite(fd, view[start:end], offset + start)
        written_end = offset + end
    return written_end


def is_zero(data: bytes) -> bool:
    return data[:1] == b"\0" and data[-1:] == b"\0" and data == bytes(len(data))


_BLOCK = 4096
_ZERO_BLOCK = bytes(_BLOCK)


def nonzero_extents(data: bytes, offset: int) -> Iterator[tuple[int, int]]:
    """(start, end) ranges of ``data`` to write, leaving file-block-aligned zero runs as holes.

    A chunk that is only partly zero (data followed by a long zero run: chunkers
    cut zero runs at their maximum size) would otherwise fill the hole.
    """
    if _ZERO_BLOCK not in data:  # fast path: no aligned or unaligned zero block at all
        yield 0, len(data)
        return
    pos = -offset % _BLOCK  # first block boundary of the file inside data
    start = 0
    while pos + _BLOCK <= len(data):
        if data[pos] == 0 and data[pos : pos + _BLOCK] == _ZERO_BLOCK:
            if pos > start:
                yield start, pos
            start = pos + _BLOCK
        pos += _BLOCK
    if start < len(data):
        yield start, len(data)
