"""Reading one file (or stream) into data blobs."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Protocol

from amber.cancel import CancelToken
from amber.engine.changefacts import HEAD_BYTES, entropy_code
from amber.engine.chunker import Chunker, Readable
from amber.repository import BlobType

_O_NOATIME = getattr(os, "O_NOATIME", 0)


def open_file(path: bytes) -> int:
    """Open for reading without following a symlink, and without touching atime if allowed."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(path, flags | _O_NOATIME)
    except PermissionError:
        return os.open(path, flags)  # O_NOATIME needs ownership


class BlobSaver(Protocol):
    """What the archiver needs from a repository to store blobs."""

    def has(self, blob_id: bytes) -> bool: ...

    def save(self, type: BlobType, data: bytes | memoryview, blob_id: bytes | None = None) -> bool: ...


@dataclass
class FileContent:
    content: list[bytes] = field(default_factory=list)
    sha256: bytes = b""
    size: int = 0
    new_blobs: int = 0
    new_bytes: int = 0
    changed_while_reading: bool = False
    entropy: int = 0  # of the first chunk (changefacts.entropy_code)
    head: bytes = b""  # the first bytes, to check the type's magic


class ContentReader:
    """Chunks, hashes and stores content; safe to use from many threads."""

    def __init__(
        self,
        saver: BlobSaver,
        blob_id: Callable[[bytes | memoryview], bytes],
        chunker_factory: Callable[[], Chunker],
        on_bytes: Callable[[int], None] = lambda n: None,
        cancel: CancelToken | None = None,
    ) -> None:
        self._saver = saver
        self._cancel = (cancel or CancelToken()).watch()
        self._blob_id = blob_id
        self._chunker_factory = chunker_factory
        self._on_bytes = on_bytes
        self._local: dict[int, Chunker] = {}

    def _chunker(self) -> Chunker:
        ident = threading.get_ident()
        c = self._local.get(ident)
        if c is None:
            c = self._local[ident] = self._chunker_factory()
        return c

    def _store(self, piece: bytes | memoryview, result: FileContent) -> None:
        self._cancel.check()  # a safe point between chunks: a large file or a stream stops too
        bid = self._blob_id(piece)
        if not result.content:  # the first chunk: sampled here, so no extra pass (changefacts)
            result.entropy = entropy_code(piece)
            result.head = bytes(piece[:HEAD_BYTES])
        result.content.append(bid)
        if not self._saver.has(bid) and self._saver.save(BlobType.DATA, piece, bid):
            result.new_blobs += 1
            result.new_bytes += len(piece)
        self._on_bytes(len(piece))

    def read_stream(self, stream: Readable | IO[bytes]) -> FileContent:
        result = FileContent()
        chunks, digest = self._chunker().stream_chunks(stream)
        for piece in chunks:
            self._store(piece, result)
        result.sha256 = digest.digest()
        result.size = digest.size
        return result

    def read_file(self, path: bytes, before: os.stat_result) -> FileContent:
        """Read a regular file; flags it when size, mtime or ctime moved meanwhile."""
        return self.read_open(open_file(path), before)

    def read_open(self, fd: int, before: os.stat_result) -> FileContent:
        """Like :meth:`read_file` for a descriptor from :func:`open_file`, which it closes."""
        try:
            self._cancel.check()  # queued reads end at once after a cancel
            if before.st_size < self._chunker().min_size:
                result = self._read_small(fd, before.st_size)
            else:
                with os.fdopen(fd, "rb", buffering=0, closefd=False) as f:
                    result = self.read_stream(f)
            after = os.fstat(fd)
        finally:
            os.close(fd)
        result.changed_while_reading = (
            after.st_size != before.st_size
            or after.st_mtime_ns != before.st_mtime_ns
            or after.st_ctime_ns != before.st_ctime_ns
            or result.size != before.st_size
        )
        return result

    def _read_small(self, fd: int, expected: int) -> FileContent:
        parts = [os.read(fd, expected + 1)]
        while len(parts[-1]) and sum(map(len, parts)) > expected:
            parts.append(os.read(fd, 1 << 20))  # grew while we looked: take it all
        data = b"".join(parts) if len(parts) > 1 else parts[0]
        result = FileContent(sha256=hashlib.sha256(data).digest(), size=len(data))
        if not data:
            return result
        if len(data) < self._chunker().min_size:
            self._store(data, result)
        else:
            for piece in self._chunker().chunks(data):
                self._store(piece, result)
        return result
