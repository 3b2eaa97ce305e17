"""One copy job: a source pack's wanted blobs, verified and sealed into the destination.

Runs on a copier worker thread. Each blob is decrypted and verified against its
source ID (§6); its destination ID is the keyed hash with the destination's ID
key, or the source ID itself when both repositories share it (same-ID mode). A
compressed payload is decompressed only to hash it; a destination writer that
can seals the same payload (no recompression).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from amber.engine.progress import Progress
from amber.errors import IntegrityError
from amber.repository import BlobType, Location
from amber.repository.codec import EncodedBlob

BlobId = Callable[[bytes | memoryview], bytes]
SMALL = 64 * 1024  # payloads up to this size are copied and sealed in batches
BATCH = 64  # small blobs per batch: one locked section of the writer for all of them


class BlobReader(Protocol):
    def locate(self, blob_id: bytes) -> Location: ...

    def load_encoded_from_pack(
        self, pack: str, wanted: Iterable[tuple[bytes, Location]]
    ) -> Iterator[tuple[bytes, EncodedBlob | IntegrityError]]: ...


class BlobWriter(Protocol):
    def has(self, blob_id: bytes) -> bool: ...

    def save(self, type: BlobType, data: bytes | memoryview, blob_id: bytes | None = None) -> bool: ...


@runtime_checkable
class EncodedBlobWriter(BlobWriter, Protocol):
    """A writer that seals another repository's encoded payload as is (no recompression)."""

    def save_encoded(self, type: BlobType, blob_id: bytes, blob: EncodedBlob) -> bool: ...

    def save_encoded_many(self, type: BlobType, blobs: Sequence[tuple[bytes, EncodedBlob]]) -> list[bool]: ...


@dataclass
class CopyStats:
    trees: int = 0  # trees rewritten (not resolved by a shortcut)
    trees_added: int = 0
    blobs_read: int = 0  # data blobs read from the source
    blobs_added: int = 0  # data blobs new to the destination
    bytes_read: int = 0  # plaintext bytes read from the source
    bytes_added: int = 0  # plaintext bytes of new data blobs
    reused: int = 0  # IDs resolved without reading (reference or cache)


class PackCopier:
    """Copies one source pack's wanted blobs per call; thread-safe (stats under a lock)."""

    def __init__(
        self, src_blobs: BlobReader, dst_blobs: BlobWriter, dst_blob_id: BlobId | None,
        stats: CopyStats, progress: Progress,
    ) -> None:  # fmt: skip
        self._src_blobs = src_blobs
        self._writer = dst_blobs
        self._dst_id = dst_blob_id  # None: same-ID mode
        self._save_encoded = self._save_many = None
        if isinstance(dst_blobs, EncodedBlobWriter):
            self._save_encoded, self._save_many = dst_blobs.save_encoded, dst_blobs.save_encoded_many
        self.stats = stats
        self._stats_lock = threading.Lock()
        self._progress = progress

    def __call__(self, pack: str, wanted: list[tuple[bytes, Location]]) -> list[tuple[bytes, bytes]]:
        """(source ID, destination ID) of every wanted blob; in same-ID mode the pack may
        hold trees (a pack never mixes blob types)."""
        done: list[tuple[bytes, bytes]] = []
        dst_id, writer, save_encoded = self._dst_id, self._writer, self._save_encoded
        btype = wanted[0][1].type if dst_id is None else BlobType.DATA
        small: list[tuple[bytes, EncodedBlob]] = []  # copies: decoded blobs are views of a reused buffer
        counts = [0, 0, 0, 0]  # read, read bytes, added, added bytes
        for src, blob in self._src_blobs.load_encoded_from_pack(pack, wanted):
            if isinstance(blob, IntegrityError):
                raise IntegrityError(f"source blob {src.hex()[:16]} in pack {pack[:16]}: {blob}")
            plain = blob.plain
            dst = src if dst_id is None else dst_id(plain)
            done.append((src, dst))
            if save_encoded is not None and len(blob.payload) <= SMALL:
                payload = bytes(blob.payload)
                kept = EncodedBlob(payload, blob.raw_length, plain if blob.raw_length else payload)
                small.append((dst, kept))
                if len(small) >= BATCH:
                    self._save_small(btype, small, counts)
                continue
            new = save_encoded(btype, dst, blob) if save_encoded else writer.save(btype, plain, dst)
            self._count(counts, len(plain), new)
        if small:
            self._save_small(btype, small, counts)
        read, read_bytes, added, added_bytes = counts
        with self._stats_lock:
            if btype is BlobType.TREE:
                self.stats.trees_added += added
                return done
            self.stats.blobs_read += read
            self.stats.bytes_read += read_bytes
            self.stats.blobs_added += added
            self.stats.bytes_added += added_bytes
        self._progress.bytes_done(read_bytes)
        return done

    def _save_small(self, btype: BlobType, small: list[tuple[bytes, EncodedBlob]], counts: list[int]) -> None:
        assert self._save_many is not None
        for (_, blob), new in zip(small, self._save_many(btype, small), strict=True):
            self._count(counts, len(blob.plain), new)
        small.clear()

    @staticmethod
    def _count(counts: list[int], size: int, new: bool) -> None:
        counts[0] += 1
        counts[1] += size
        if new:
            counts[2] += 1
            counts[3] += size
