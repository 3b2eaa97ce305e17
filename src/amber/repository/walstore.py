"""Archived PostgreSQL WAL files: one sealed object per file under ``wal/`` (design §12d).

A push must cost one or two requests, not an index load, so a WAL file is not
chunked into packs: it is compressed (zstd, when that pays) and sealed whole,
bound to its object name (kind ``wal``), so a file renamed in storage fails
authentication. The sealed plaintext is::

    codec(1: 0 raw, 1 zstd) ‖ raw length(8, big-endian) ‖ SHA-256 of the WAL bytes(32) ‖ payload

The digest lets a repeated push be compared without decompressing, and is checked
after decompression on every read.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import zstandard

from amber.errors import IntegrityError, ObjectNotFound, UsageError, WalConflict
from amber.repository.limits import OBJECT_LIMITS
from amber.repository.repo import Repository
from amber.repository.sealing import Kind
from amber.storage.base import FileInfo, FileType, Handle
from amber.storage.layout import too_large

_HEADER = struct.Struct(">BQ32s")
_RAW, _ZSTD = 0, 1
LIMIT = OBJECT_LIMITS[FileType.WAL]


@dataclass(frozen=True)
class WalObject:
    data: bytes
    sha256: bytes


class WalStore:
    """The ``wal/`` objects of one repository. Names are validated by the caller (services.walnames)."""

    def __init__(self, repo: Repository) -> None:
        if repo.config.version < 2:  # while migrating, objects are written bound: WAL too
            raise UsageError("archiving WAL needs repository format 2: run `amber migrate` first")
        self._repo = repo
        self._backend = repo.backend
        self._level = repo.config.compression_level

    def seal(self, name: str, data: bytes) -> bytes:
        digest = hashlib.sha256(data).digest()
        codec, payload = _RAW, data
        if self._level > 0 and data:
            packed = zstandard.ZstdCompressor(level=self._level).compress(data)
            if len(packed) < len(data) - len(data) // 32:
                codec, payload = _ZSTD, packed
        plain = _HEADER.pack(codec, len(data), digest) + payload
        return self._repo.sealer.seal(Kind.WAL, plain, name.encode())

    def open(self, name: str, sealed: bytes, verify: bool = True) -> WalObject:
        """The WAL bytes (and their digest); ``verify=False`` stops after authentication."""
        plain = self._repo.sealer.open(Kind.WAL, sealed, name.encode())
        if len(plain) < _HEADER.size:
            raise IntegrityError(f"wal/{name}: too short")
        codec, raw_length, digest = _HEADER.unpack_from(plain)
        if not verify:
            return WalObject(b"", digest)
        payload = memoryview(plain)[_HEADER.size :]
        if raw_length > LIMIT or codec not in (_RAW, _ZSTD):
            raise IntegrityError(f"wal/{name}: malformed header")
        if codec == _ZSTD:
            try:
                data = zstandard.ZstdDecompressor().decompress(payload, max_output_size=raw_length)
            except zstandard.ZstdError as exc:
                raise IntegrityError(f"wal/{name}: bad compression") from exc
        else:
            data = bytes(payload)
        if len(data) != raw_length or hashlib.sha256(data).digest() != digest:
            raise IntegrityError(f"wal/{name}: content does not match its digest")
        return WalObject(data, digest)

    def put(self, name: str, data: bytes) -> bool:
        """Store ``data`` under ``name``; False when the same content was already there.

        Raises WalConflict when other content is archived under the name: PostgreSQL
        must never believe a different file was archived.
        """
        handle = Handle(FileType.WAL, name)
        try:
            existing = self._backend.load(handle, limit=LIMIT)
        except ObjectNotFound:
            existing = None
        if existing is not None:
            try:
                same = self.open(name, existing, verify=False).sha256 == hashlib.sha256(data).digest()
            except IntegrityError as exc:
                raise WalConflict(f"wal/{name} exists but does not authenticate ({exc.message}); "
                                  "run `amber check` and remove the damaged object") from exc  # fmt: skip
            if not same:
                raise WalConflict(f"{name} is already archived with different content")
            return False
        self._backend.save(handle, self.seal(name, data))
        return True

    def load_sealed(self, name: str, size: int | None = None) -> bytes:
        handle = Handle(FileType.WAL, name)
        if size is not None and size > LIMIT:
            raise too_large(handle, LIMIT, size)
        return self._backend.load(handle, limit=LIMIT)

    def get(self, name: str) -> bytes:
        """The verified WAL bytes; ObjectNotFound when not archived."""
        return self.open(name, self.load_sealed(name)).data

    def list(self) -> Iterator[FileInfo]:
        """Every object in ``wal/`` (none in a repository that never archived WAL)."""
        try:
            yield from self._backend.list(FileType.WAL)
        except ObjectNotFound:
            return

    def remove(self, name: str) -> None:
        self._backend.remove(Handle(FileType.WAL, name))
