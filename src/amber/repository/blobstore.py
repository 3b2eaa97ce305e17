"""Blob storage: compress, encrypt, pack, index; and the way back.

Write order is what keeps a crash harmless: a pack is fully saved before its
blobs enter an index file, and index files are saved before the snapshot that
needs them (the snapshot is written by the caller after ``flush``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from amber.errors import IntegrityError, ObjectNotFound, StorageError
from amber.repository.codec import BlobCodec, EncodedBlob
from amber.repository.crypto import OVERHEAD, MasterKey
from amber.repository.index import Location, encode_index
from amber.repository.indexbook import IndexBook
from amber.repository.limits import data_blob_limit
from amber.repository.pack import (
    BlobType,
    PackedBlob,
    encode_header,
    pack_id,
)
from amber.repository.packer import OpenPack, Packer
from amber.repository.packread import read_pack, read_pack_header
from amber.repository.sealing import BLOB_KIND, Kind, Sealer
from amber.storage.base import Backend, FileType, Handle
from amber.storage.mapped import load_range

_Decoded = TypeVar("_Decoded")
_Item = tuple[bytes, "bytes | memoryview", int, int]  # blob ID, payload to seal, raw length, plain length
_Slot = tuple[OpenPack, int, int, "bytes | memoryview", bytes]  # pack, offset, sealed size, payload, blob ID

INDEX_FLUSH_PACKS = 16  # a crash re-uploads at most this many packs' data
INDEX_FLUSH_BLOBS = 16_384  # and the rows waiting for an index file stay few (small files)


@dataclass
class WriteStats:
    data_blobs: int = 0
    tree_blobs: int = 0
    raw_bytes: int = 0
    stored_bytes: int = 0
    packs: int = 0


class BlobStore(IndexBook):
    """Thread-safe blob saver and loader over one backend."""

    def __init__(
        self, backend: Backend, key: MasterKey, compression_level: int = 3, sealer: Sealer | None = None,
        max_data: int = data_blob_limit(8 << 20),
    ) -> None:  # fmt: skip
        # the repository's format version (design §4); data blobs up to max_data (§3)
        super().__init__(backend, sealer or Sealer(key), max_data)
        self.key = key
        self.codec = BlobCodec(self.sealer, compression_level, max_data)
        self.stats = WriteStats()
        self._packer = Packer()
        self._buffer_free = threading.Condition(self._lock)
        self._failed: BaseException | None = None  # a pack that could not be sealed or saved
        self._in_flight: set[bytes] = set()
        self._unindexed: dict[str, list[PackedBlob]] = {}
        self._unindexed_blobs = 0

    @property
    def compression_level(self) -> int:
        return self.codec.compression_level

    def set_compression_level(self, level: int) -> None:
        """Compress blobs saved from now on at ``level`` (prune --recompress)."""
        self.codec.compression_level = level

    def settled(self) -> bool:
        """Every pack written is indexed, none is open or failed: the store may serve another run."""
        with self._lock:
            busy = self._in_flight or self._unindexed or self._packer.live
            return self._failed is None and not busy

    def reset_stats(self) -> None:
        """Count this store's writes afresh (one store kept open across operations, §12c)."""
        self.stats = WriteStats()

    def has(self, blob_id: bytes) -> bool:
        return blob_id in self.index or blob_id in self._in_flight

    # -- writing ----------------------------------------------------------
    def encode_blob(self, data: bytes | memoryview, type: BlobType = BlobType.DATA) -> tuple[bytes, int]:
        """Compress when it pays, then encrypt: a blob as a pack stores it (§6)."""
        return self.codec.encode(type, self.key.blob_id(data), data)

    def save(self, type: BlobType, data: bytes | memoryview, blob_id: bytes | None = None) -> bool:
        """Store a blob unless already present. Returns True if it was new."""
        if blob_id is None:
            blob_id = self.key.blob_id(data)
        with self._lock:
            if blob_id in self.index or blob_id in self._in_flight:
                return False
            self._in_flight.add(blob_id)
        payload, raw_length = self.codec.compress(data)
        self._seal(type, [(blob_id, payload, raw_length, len(data))])
        return True

    def save_encoded(self, type: BlobType, blob_id: bytes, blob: EncodedBlob) -> bool:
        """Store an already encoded blob (from another repository) under ``blob_id``.

        The payload is sealed with this store's key as is: no recompression
        (copy, design §19). The caller vouches that ``blob_id`` is this store's
        ID of ``blob.plain``. A store that does not compress keeps the plaintext.
        Returns True if the blob was new.
        """
        return self.save_encoded_many(type, [(blob_id, blob)])[0]

    def save_encoded_many(self, type: BlobType, blobs: Sequence[tuple[bytes, EncodedBlob]]) -> list[bool]:
        """:meth:`save_encoded` for several blobs, their slots reserved in one locked section
        (for small blobs the lock round trips cost more than the encryption)."""
        raw = self.codec.compression_level <= 0
        new = [False] * len(blobs)
        where: list[int] = []
        items: list[_Item] = []
        for i, (blob_id, b) in enumerate(blobs):
            if blob_id in self.index:
                continue  # checked again under the lock; most blobs of an incremental copy stop here
            where.append(i)
            if raw and b.raw_length:
                items.append((blob_id, b.plain, 0, len(b.plain)))
            else:
                items.append((blob_id, b.payload, b.raw_length, len(b.plain)))
        if items:
            for i, stored in zip(where, self._seal(type, items, claim=True), strict=True):
                new[i] = stored
        return new

    def _seal(self, type: BlobType, items: Sequence[_Item], claim: bool = False) -> list[bool]:
        """Encrypt each payload straight into a slot reserved in the open pack; write packs that fill up.

        Slots for a run of items are reserved in one locked section. With
        ``claim``, each blob is claimed there too: False for one already stored
        or in flight.
        """
        stored = [False] * len(items)
        start = 0
        while start < len(items):
            start = self._seal_run(type, items, start, stored, claim)
        return stored

    def _seal_run(
        self, type: BlobType, items: Sequence[_Item], start: int, stored: list[bool], claim: bool
    ) -> int:
        """Reserve slots for items from ``start`` on, fill them, write the packs they complete.
        Returns the index of the first item not handled."""
        slots: list[_Slot] = []
        ready: list[OpenPack] = []
        i = start
        with self._buffer_free:
            self._raise_if_failed()
            while i < len(items):
                if self._packer.must_wait(type):  # bounded memory: wait for a pack save to finish
                    if slots:
                        break  # but fill the slots held first: their pack waits for them
                    while self._packer.must_wait(type):
                        self._buffer_free.wait()
                        self._raise_if_failed()
                blob_id, payload, raw_length, plain_length = items[i]
                i += 1
                if claim:
                    if blob_id in self.index or blob_id in self._in_flight:
                        continue
                    self._in_flight.add(blob_id)
                size = len(payload) + OVERHEAD
                pack, offset, closed = self._packer.reserve(type, blob_id, size, raw_length)
                if closed is not None:
                    ready.append(closed)
                slots.append((pack, offset, size, payload, blob_id))
                stored[i - 1] = True
                self.stats.raw_bytes += plain_length
                self.stats.stored_bytes += size
                self.stats.data_blobs += type is BlobType.DATA
                self.stats.tree_blobs += type is BlobType.TREE
        filled = 0
        kind = BLOB_KIND[type]
        try:
            for pack, offset, size, payload, blob_id in slots:
                with memoryview(pack.buffer) as view:
                    self.sealer.seal_into(kind, payload, view[offset : offset + size], blob_id)
                filled += 1
        except BaseException as exc:
            for pack, *_ in slots[filled:]:
                pack.poisoned = True  # a slot of garbage: the pack must never be written
            with self._lock:
                self._failed = self._failed or exc
            self._slots_filled(slots, ready)  # drops the poisoned packs
            raise
        self._slots_filled(slots, ready)
        return i

    def _slots_filled(self, slots: list[_Slot], ready: list[OpenPack]) -> None:
        with self._lock:
            ready.extend(pack for pack, *_ in slots if self._packer.filled(pack))
        for pack in ready:
            self._write_pack(pack)

    def _raise_if_failed(self) -> None:
        """A pack that could not be sealed or saved loses blobs that callers counted as stored:
        refuse to go on, so no index or snapshot can reference them."""
        failed = self._failed
        if isinstance(failed, Exception):
            raise failed  # the same error (e.g. DiskFull) in every thread that meets it
        if failed is not None:
            raise StorageError("an earlier pack write was interrupted") from failed

    def _write_pack(self, pack: OpenPack) -> None:
        if pack.poisoned:
            with self._lock:
                self._in_flight.difference_update(b.id for b in pack.blobs)
                self._release(pack)
            return
        try:
            header = encode_header(pack.blobs, self.sealer.sealer_for(Kind.PACK_HEADER))
            end = pack.used + len(header)
            data: bytes | memoryview
            if end <= len(pack.buffer):
                pack.buffer[pack.used : end] = header
                data = memoryview(pack.buffer)[:end]
            else:  # a header larger than the headroom (many tiny blobs): rare, so a copy is fine
                data = bytes(memoryview(pack.buffer)[: pack.used]) + header
            name = pack_id(data)
            try:
                self.backend.save(Handle(FileType.PACK, name), data)
            finally:
                if isinstance(data, memoryview):
                    data.release()
        except BaseException as exc:
            with self._lock:
                self._failed = self._failed or exc
                self._in_flight.difference_update(b.id for b in pack.blobs)
                self._release(pack)  # waiting writers wake up and meet the failure
            raise
        flush_index = False
        with self._lock:
            self._release(pack)
            self.index.add_pack(name, pack.blobs)
            self._in_flight.difference_update(b.id for b in pack.blobs)
            self._unindexed[name] = pack.blobs
            self.stats.packs += 1
            self._unindexed_blobs += len(pack.blobs)
            flush_index = (
                len(self._unindexed) >= INDEX_FLUSH_PACKS or self._unindexed_blobs >= INDEX_FLUSH_BLOBS
            )
        if flush_index:
            self._write_index()

    def _release(self, pack: OpenPack) -> None:
        """Give a finished pack's buffer back and wake a writer waiting for one (lock held)."""
        self._packer.recycle(pack)
        self._buffer_free.notify_all()

    def _write_index(self, supersedes: Sequence[str] = ()) -> None:
        with self._lock:
            packs, self._unindexed, self._unindexed_blobs = self._unindexed, {}, 0
        if not packs and not supersedes:
            return
        data = self.sealer.seal(Kind.INDEX, encode_index(packs, supersedes))
        name = pack_id(data)
        self.backend.save(Handle(FileType.INDEX, name), data)
        with self._lock:
            self.index_files[name] = list(packs)
            if supersedes:
                self.supersedes[name] = list(supersedes)

    def flush_index(self) -> None:
        """Index the packs saved so far and drop partly filled ones (after an interruption)."""
        self._write_index()

    def flush(self, supersedes: Sequence[str] = ()) -> None:
        """Save partly filled packs, then the index for every new pack.

        The last index file lists ``supersedes`` (written even without packs):
        the index files that everything written since replaces (design §8).
        Raises if any pack of this store failed to be sealed or saved: its blobs
        are gone, and an index or snapshot written now could reference them.
        """
        with self._lock:
            self._raise_if_failed()
            pending = self._packer.close_all()
        for pack in pending:
            self._write_pack(pack)
        with self._lock:
            self._raise_if_failed()
        self._write_index(supersedes)

    # -- reading ----------------------------------------------------------
    def decode_blob(
        self, blob_id: bytes, sealed: bytes | memoryview, raw_length: int, type: BlobType = BlobType.DATA
    ) -> bytes:
        return self.codec.decode(blob_id, sealed, raw_length, type)

    def locate(self, blob_id: bytes) -> Location:
        loc = self.index.lookup(blob_id)
        if loc is None:
            raise ObjectNotFound(f"blob {blob_id.hex()[:16]} is not in the index")
        return loc

    def load(self, blob_id: bytes) -> bytes:
        loc = self.locate(blob_id)
        self.codec.check_location(blob_id, loc)  # before a read of the length the index claims
        sealed = self.backend.load(Handle(FileType.PACK, loc.pack), loc.offset, loc.length)
        if len(sealed) != loc.length:
            raise IntegrityError(f"pack {loc.pack[:16]} is truncated")
        return self.decode_blob(blob_id, sealed, loc.raw_length, loc.type)

    def load_from_pack(
        self, pack: str, wanted: Iterable[tuple[bytes, Location]]
    ) -> Iterator[tuple[bytes, bytes | IntegrityError]]:
        """Read the span covering ``wanted`` blobs of one pack in one request.

        Yields (blob id, plaintext) or (blob id, error) so one bad blob does not
        hide the good ones next to it.
        """
        return self._load_span(pack, wanted, self.codec.decode)

    def stream_from_pack(
        self, pack: str, wanted: Iterable[tuple[bytes, Location]]
    ) -> Iterator[tuple[bytes, bytes | memoryview | IntegrityError]]:
        """Like :meth:`load_from_pack`, for a caller done with each blob before it takes the
        next: a large blob's plaintext is a view of a buffer the next one reuses."""
        return self._load_span(pack, wanted, self.codec.decode_passing)

    def load_encoded_from_pack(
        self, pack: str, wanted: Iterable[tuple[bytes, Location]]
    ) -> Iterator[tuple[bytes, EncodedBlob | IntegrityError]]:
        """Like :meth:`load_from_pack`, keeping each blob's encoded payload too.

        Every blob is decrypted, decompressed when compressed (for the plaintext
        only) and verified against its ID, as :meth:`decode_blob` does.
        """
        return self._load_span(pack, wanted, self.codec.open)

    def _load_span(
        self, pack: str, wanted: Iterable[tuple[bytes, Location]],
        decode: Callable[[bytes, memoryview, int, BlobType], _Decoded],
    ) -> Iterator[tuple[bytes, _Decoded | IntegrityError]]:  # fmt: skip
        items: list[tuple[bytes, Location]] = []
        for blob_id, loc in sorted(wanted, key=lambda item: item[1].offset):
            try:  # a length over the limit is never part of the range read
                self.codec.check_location(blob_id, loc)
            except IntegrityError as exc:
                yield blob_id, exc
                continue
            items.append((blob_id, loc))
        if not items:
            return
        start = items[0][1].offset
        end = max(loc.offset + loc.length for _, loc in items)
        with load_range(self.backend, Handle(FileType.PACK, pack), start, end - start) as view:
            for blob_id, loc in items:
                piece = view[loc.offset - start : loc.offset - start + loc.length]
                if len(piece) != loc.length:
                    yield blob_id, IntegrityError(f"pack {pack[:16]} is truncated")
                    continue
                try:  # decoded into memory of its own: nothing handed out is a view of ``view``
                    yield blob_id, decode(blob_id, piece, loc.raw_length, loc.type)
                except IntegrityError as exc:
                    yield blob_id, exc
                finally:
                    piece.release()

    def read_pack(self, pack: str) -> tuple[bytes, list[PackedBlob]]:
        """Load a whole pack (at most MAX_PACK_BYTES) and decode its own header."""
        return read_pack(self.backend, pack, self.sealer.opener_for(Kind.PACK_HEADER), self.codec.max_data)

    def read_pack_header(self, pack: str, size: int) -> list[PackedBlob]:
        """Decode the header of a pack of ``size`` bytes (listed) with ranged loads."""
        opener = self.sealer.opener_for(Kind.PACK_HEADER)
        return read_pack_header(self.backend, pack, size, opener, self.codec.max_data)
