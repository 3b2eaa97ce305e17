"""Content-defined chunking of files and streams (FastCDC via pyfastcdc)."""

from __future__ import annotations

import contextlib
import hashlib
import mmap
from collections.abc import Iterator
from typing import IO, Protocol

import pyfastcdc

from amber.buffers import lazy_buffer


class _Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...


class Readable(Protocol):
    def readinto(self, buf: memoryview, /) -> int | None: ...


class HashingReader:
    """A ``readinto`` source that feeds every byte read to a hash."""

    def __init__(self, raw: Readable | IO[bytes], hasher: _Hasher) -> None:
        self._raw = raw
        self._hasher = hasher
        self.bytes_read = 0

    def readinto(self, buf: memoryview) -> int:
        n = self._raw.readinto(buf) or 0  # type: ignore[union-attr]
        if n:
            self._hasher.update(buf[:n])
            self.bytes_read += n
        return n


class Chunker:
    """Splits byte streams at content-defined boundaries.

    ``seed`` (from the repository key) alters the gear table so boundaries do
    not reveal content to someone who sees only chunk sizes.

    Streams are read through a buffer of half the maximum chunk size (grown when
    a chunk needs it) that is committed only as far as the data reaches;
    pyfastcdc's own stream reader zero-fills twice the maximum for every file.
    """

    def __init__(self, avg: int, minimum: int, maximum: int, seed: int) -> None:
        self.min_size = minimum
        self.max_size = maximum
        self._cdc = pyfastcdc.FastCDC(
            avg, min_size=minimum, max_size=maximum, normalized_chunking=1, seed=seed
        )

    def chunks(self, buf: bytes | memoryview) -> Iterator[memoryview]:
        """Chunks of an in-memory buffer (views into it)."""
        view = memoryview(buf)
        for c in self._cdc.cut_buf(view):
            yield view[c.offset : c.offset + c.length]

    def stream_chunks(self, stream: Readable | IO[bytes]) -> tuple[Iterator[memoryview], _Digest]:
        """Chunks of a stream plus its SHA-256, complete once the chunks are consumed.

        Each view is only valid until the next one is produced.
        """
        digest = _Digest()
        reader = HashingReader(stream, digest.hash)
        digest.reader = reader
        return self._stream(reader), digest

    def _stream(self, reader: HashingReader) -> Iterator[memoryview]:
        # A cut found inside the buffer is final: scanning more data would meet the
        # same positions with the same masks first. A chunk that ends at the end of
        # the buffer may only be cut there for want of data, so it waits for the next
        # fill (unless it has the maximum size, or the stream has ended). The buffer
        # starts at half the maximum chunk size and grows only for a chunk that needs
        # more; its pages are committed as far as the data reaches and given back at
        # the end of the stream.
        max_size = self.max_size
        buffer = lazy_buffer(max(max_size // 2, self.min_size * 2))
        view = memoryview(buffer)
        filled, eof = 0, False
        try:
            while True:
                while not eof and filled < len(view):
                    n = reader.readinto(view[filled:])
                    if n <= 0:
                        eof = True
                    filled += n
                if filled == 0:
                    return
                start = 0
                for c in self._cdc.cut_buf(view[:filled]):
                    end = c.offset + c.length
                    if not eof and end >= filled and c.length < max_size:
                        break
                    start = end
                    yield view[c.offset : end]
                if eof:
                    return
                if start == 0 and len(view) <= max_size:  # one chunk fills it and is not done: grow
                    bigger = lazy_buffer(max_size + max_size // 8)  # room for a max-size chunk
                    bigger[:filled] = view[:filled]
                    view.release()
                    _close(buffer)
                    buffer, view = bigger, memoryview(bigger)
                else:  # memoryview to memoryview: one memmove, no temporary copy
                    view[: filled - start] = view[start:filled]
                    filled -= start
        finally:
            view.release()
            _close(buffer)


def _close(buffer: mmap.mmap) -> None:
    with contextlib.suppress(BufferError):  # a chunk view is still held: the GC unmaps it later
        buffer.close()


class _Digest:
    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.reader: HashingReader | None = None

    @property
    def size(self) -> int:
        return self.reader.bytes_read if self.reader else 0

    def digest(self) -> bytes:
        return self.hash.digest()
