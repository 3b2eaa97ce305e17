"""Content-defined chunking of files and streams (FastCDC via pyfastcdc)."""

from __future__ import annotations

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

    Not thread-safe: streams are read through one buffer that the chunker keeps
    from file to file (pyfastcdc's own stream reader allocates and zero-fills a
    fresh 2 x max-size buffer per file), so use one chunker per thread.
    """

    def __init__(self, avg: int, minimum: int, maximum: int, seed: int) -> None:
        self.min_size = minimum
        self.max_size = maximum
        self._cdc = pyfastcdc.FastCDC(
            avg, min_size=minimum, max_size=maximum, normalized_chunking=1, seed=seed
        )
        self._buffer: mmap.mmap | None = None

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
        # A cut depends on at most ``max_size`` bytes from the chunk's start, so a
        # chunk found in the buffer is final when that much data (or the end of
        # the stream) follows its start; the rest moves to the front for the next fill.
        if self._buffer is None:
            self._buffer = lazy_buffer(2 * self.max_size)  # pages committed as far as reads reach
        max_size = self.max_size
        view = memoryview(self._buffer)
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
                    if not eof and c.offset + max_size > filled:
                        break
                    start = c.offset + c.length
                    yield view[c.offset : start]
                if eof:
                    return
                # memoryview to memoryview: one memmove, no temporary copy
                view[: filled - start] = view[start:filled]
                filled -= start
        finally:
            view.release()


class _Digest:
    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.reader: HashingReader | None = None

    @property
    def size(self) -> int:
        return self.reader.bytes_read if self.reader else 0

    def digest(self) -> bytes:
        return self.hash.digest()
