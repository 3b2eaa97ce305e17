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
    if 0 not in data[-offset % _BLOCK :: _BLOCK]:  # no block starts with a zero: one write (most chunks)
        pwrite(fd, memoryview(data), offset)
        return offset + len(data)
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

    ``data`` lies at ``offset`` in the file. A chunk that is only partly zero (data
    followed by a long zero run: chunkers cut zero runs at their maximum size) would
    otherwise fill the hole.
    """
    first = -offset % _BLOCK  # first block boundary of the file inside data
    heads = data[first::_BLOCK]  # each aligned block's first byte: a zero block starts with 0
    i = heads.find(0)
    start = 0
    while i >= 0:
        pos = first + i * _BLOCK
        if pos + _BLOCK > len(data):
            break
        if data.startswith(_ZERO_BLOCK, pos):
            if pos > start:
                yield start, pos
            start = pos + _BLOCK
        i = heads.find(0, i + 1)
    if start < len(data):
        yield start, len(data)
