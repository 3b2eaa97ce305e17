"""Archived PostgreSQL WAL files under ``wal/`` (design §12d).

Two forms, told apart by name (so prune, check and copy know a record without reading it):

* ``wal/<cluster>.<file>``: the **sealed WAL file** of format 2, compressed and sealed
  whole. Still read everywhere; written only into format-2 repositories.
* ``wal/<cluster>.<file>.rec``: the **WAL record** of format 3. The file's content is
  chunked into data blobs in packs like any file's (deduplicated, written and indexed
  first), and the record lists them (:mod:`amber.repository.walrecord`).

Both are sealed with kind ``wal`` and bound to their object name, so an object renamed
in storage fails authentication. Both carry the SHA-256 of the WAL bytes: a repeated
push is compared without reading the content, and every read checks it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import zstandard

from amber.errors import IntegrityError, ObjectNotFound, UsageError, WalConflict
from amber.repository.limits import OBJECT_LIMITS
from amber.repository.repo import Repository
from amber.repository.sealing import Kind
from amber.repository.walrecord import (
    HEADER,
    RAW,
    RECORD,
    ZSTD,
    BlobRef,
    WalRecord,
    decode_record,
    encode_record,
)
from amber.storage.base import FileInfo, FileType, Handle
from amber.storage.layout import too_large

LIMIT = OBJECT_LIMITS[FileType.WAL]
BlobIds = list[bytes]
RECORD_SUFFIX = ".rec"
RECORDS_FROM_VERSION = 3


def record_object(name: str) -> str:
    """The record's object name for WAL object name ``<cluster>.<file>``."""
    return name + RECORD_SUFFIX


def wal_object(obj: str) -> str:
    """``<cluster>.<file>`` of either form's object name."""
    return obj.removesuffix(RECORD_SUFFIX)


def is_record(obj: str) -> bool:
    return obj.endswith(RECORD_SUFFIX)


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
        self.writes_records = repo.config.version >= RECORDS_FROM_VERSION

    # -- format 2: the file sealed whole ------------------------------------------------
    def seal(self, name: str, data: bytes) -> bytes:
        digest = hashlib.sha256(data).digest()
        codec, payload = RAW, data
        if self._level > 0 and data:
            packed = zstandard.ZstdCompressor(level=self._level).compress(data)
            if len(packed) < len(data) - len(data) // 32:
                codec, payload = ZSTD, packed
        plain = HEADER.pack(codec, len(data), digest) + payload
        return self._repo.sealer.seal(Kind.WAL, plain, name.encode())

    def open(self, name: str, sealed: bytes, verify: bool = True) -> WalObject:
        """The WAL bytes (and their digest) of a sealed file; ``verify=False`` stops after
        authentication. A record is read with :meth:`read`."""
        plain = self._repo.sealer.open(Kind.WAL, sealed, name.encode())
        if len(plain) < HEADER.size:
            raise IntegrityError(f"wal/{name}: too short")
        codec, raw_length, digest = HEADER.unpack_from(plain)
        if not verify:
            return WalObject(b"", digest)
        payload = memoryview(plain)[HEADER.size :]
        if raw_length > LIMIT or codec not in (RAW, ZSTD):
            raise IntegrityError(f"wal/{name}: malformed header")
        if codec == ZSTD:
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
        """Store ``data`` sealed whole under ``name`` (format 2); False when the same content
        was already there. WalConflict when other content is archived under the name."""
        digest = self.archived_digest(name)
        if digest is not None:
            if digest != hashlib.sha256(data).digest():
                raise WalConflict(f"{name} is already archived with different content")
            return False
        self._backend.save(Handle(FileType.WAL, name), self.seal(name, data))
        return True

    # -- format 3: a record of data blobs -------------------------------------------------
    def record(self, obj: str, sealed: bytes) -> WalRecord:
        plain = self._repo.sealer.open(Kind.WAL, sealed, obj.encode())
        return decode_record(obj, plain, LIMIT)

    def save_record(self, name: str, record: WalRecord) -> None:
        """Write the record for ``name``; its blobs must be stored and indexed already (§11).
        Refused (LeaseLost) when a lock held for it has lapsed, as a snapshot is (design §13):
        a prune may have deleted blobs it deduplicated against while the lease looked stale."""
        for held in self._repo.held_locks:
            held.ensure_held()
        obj = record_object(name)
        sealed = self._repo.sealer.seal(Kind.WAL, encode_record(record), obj.encode())
        self._backend.save(Handle(FileType.WAL, obj), sealed)

    def blob_ids(self, obj: str, size: int | None = None) -> list[bytes]:
        """The data blobs a record references (prune); ObjectNotFound when it is gone."""
        return [b.id for b in self.record(obj, self.load_sealed(obj, size)).blobs]

    def _blob(self, ref: BlobRef) -> bytes:
        blobs = self._repo.blobs
        try:  # where it was written: one ranged read, authenticated against its ID
            sealed = self._backend.load(Handle(FileType.PACK, ref.pack), ref.offset, ref.length)
            return blobs.decode_blob(ref.id, sealed, ref.raw_length)
        except (ObjectNotFound, IntegrityError):  # repacked since, or damaged: the index knows
            self._repo.ensure_index()
            return blobs.load(ref.id)

    def _assemble(self, obj: str, record: WalRecord) -> bytes:
        parts, total = [], 0
        for ref in record.blobs:
            parts.append(self._blob(ref))
            total += len(parts[-1])
            if total > record.size:  # stop before holding more than the record claims
                raise IntegrityError(f"wal/{obj}: content does not match its digest")
        data = b"".join(parts)
        if len(data) != record.size or hashlib.sha256(data).digest() != record.sha256:
            raise IntegrityError(f"wal/{obj}: content does not match its digest")
        return data

    # -- either form ------------------------------------------------------------------------
    def archived(self, name: str) -> tuple[str, bytes] | None:
        """(object name, sealed bytes) of what is archived under ``name``, record first."""
        for obj in (record_object(name), name):
            try:
                return obj, self.load_sealed(obj)
            except ObjectNotFound:
                continue
        return None

    def archived_digest(self, name: str) -> bytes | None:
        """The SHA-256 of the WAL archived under ``name`` (None: not archived). WalConflict when
        the object does not authenticate: PostgreSQL must never believe it was archived."""
        found = self.archived(name)
        if found is None:
            return None
        obj, sealed = found
        try:
            return self.record(obj, sealed).sha256 if is_record(obj) else self.open(obj, sealed, False).sha256
        except IntegrityError as exc:
            raise WalConflict(f"wal/{obj} exists but does not authenticate ({exc.message}); "
                              "run `amber check` and remove the damaged object") from exc  # fmt: skip

    def read(self, obj: str, sealed: bytes) -> bytes:
        """The verified WAL bytes of either form (record: its blobs read and digested)."""
        if is_record(obj):
            return self._assemble(obj, self.record(obj, sealed))
        return self.open(obj, sealed).data

    def load_sealed(self, obj: str, size: int | None = None) -> bytes:
        handle = Handle(FileType.WAL, obj)
        if size is not None and size > LIMIT:
            raise too_large(handle, LIMIT, size)
        return self._backend.load(handle, limit=LIMIT)

    def get(self, name: str) -> bytes:
        """The verified WAL bytes archived under ``name``; ObjectNotFound when not archived."""
        found = self.archived(name)
        if found is None:
            raise ObjectNotFound(f"wal/{name} is not archived")
        return self.read(*found)

    def list(self) -> Iterator[FileInfo]:
        """Every object in ``wal/`` (none in a repository that never archived WAL)."""
        try:
            yield from self._backend.list(FileType.WAL)
        except ObjectNotFound:
            return

    def records(self) -> Iterator[tuple[str, BlobIds | IntegrityError]]:
        """(object name, the blob IDs it references, or why it cannot be read) of every record;
        one removed while listing is left out."""
        for fi in self.list():
            if not is_record(fi.name):
                continue
            try:
                yield fi.name, self.blob_ids(fi.name, fi.size)
            except ObjectNotFound:
                continue
            except IntegrityError as exc:
                yield fi.name, exc

    def remove(self, obj: str) -> None:
        self._backend.remove(Handle(FileType.WAL, obj))


def wal_blobs(repo: Repository) -> set[bytes]:
    """The data blobs the readable WAL records reference (check counts them as used)."""
    if repo.config.version < 2:
        return set()
    return {b for _, ids in WalStore(repo).records() if not isinstance(ids, IntegrityError) for b in ids}


__all__ = [
    "RECORD", "BlobRef", "WalObject", "WalRecord", "WalStore", "is_record", "record_object", "wal_blobs",
    "wal_object",
]  # fmt: skip
