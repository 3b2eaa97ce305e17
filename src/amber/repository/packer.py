"""Assembling packs in reusable buffers, with blobs sealed straight into place.

A writer *reserves* a slot in the open pack of its blob type (under the blob
store's lock), then encrypts into that slot without the lock: threads fill one
pack side by side, and no sealed blob is copied or appended. A pack is *closed*
once it reaches the target size; it is ready to write when closed and its last
slot has been filled. Written buffers go back to a small pool, so a long backup
does not map, fault in and unmap a fresh 16 MiB buffer for every pack.

Not thread-safe by itself: the blob store calls every method under its lock.
"""

from __future__ import annotations

import mmap

from amber.buffers import lazy_buffer
from amber.repository.pack import BlobType, PackedBlob

PACK_TARGET_SIZE = 16 * 1024 * 1024
# Room past the target: a blob reserved just below the target still fits (data
# chunks are at most 8 MiB by default), and so does a typical pack header.
PACK_HEADROOM = 8 * 1024 * 1024 + 1024 * 1024
_POOL_SIZE = 4
# Buffers in use at once: an open data pack, an open tree pack and two packs being
# saved. Two overlapping saves keep a remote backend busy (one alone made a backup
# to sftp over loopback 1.67x slower than to local disk instead of 1.38x); each
# buffer costs 16+ MiB of memory.
MAX_BUFFERS = 4


class OpenPack:
    """A pack being assembled: its buffer, reserved length and unfilled slots."""

    __slots__ = ("blobs", "buffer", "closed", "poisoned", "type", "used", "writers")

    def __init__(self, type: BlobType, buffer: mmap.mmap) -> None:
        self.type = type
        self.buffer = buffer
        self.used = 0
        self.writers = 0  # reserved slots not yet filled
        self.closed = False
        self.poisoned = False  # a slot could not be filled: never write this pack
        self.blobs: list[PackedBlob] = []

    @property
    def ready(self) -> bool:
        return self.closed and self.writers == 0


class Packer:
    def __init__(
        self, target: int = PACK_TARGET_SIZE, headroom: int = PACK_HEADROOM, max_buffers: int = MAX_BUFFERS
    ) -> None:
        self.target = target
        self.capacity = target + headroom
        self.max_buffers = max_buffers
        self.live = 0  # buffers of packs not yet written (open, being filled or being saved)
        self._open: dict[BlobType, OpenPack] = {}
        self._pool: list[mmap.mmap] = []

    def must_wait(self, type: BlobType) -> bool:
        """True when a blob of ``type`` needs a new pack and every buffer is in use.

        The caller waits until a written pack is recycled. Only a new pack waits:
        a pack that is open is never blocked, so the packs holding the buffers
        always get written by the threads filling them.
        """
        return type not in self._open and self.live >= self.max_buffers

    def reserve(
        self, type: BlobType, blob_id: bytes, size: int, raw_length: int
    ) -> tuple[OpenPack, int, OpenPack | None]:
        """A slot of ``size`` bytes for a blob: (its pack, its offset, a pack now ready to write).

        The caller fills ``pack.buffer[offset:offset + size]`` and then calls
        :meth:`filled`. The third item is an earlier pack that this reservation
        closed and that has no unfilled slot left; the caller writes it.
        """
        pack = self._open.get(type)
        ready = None
        if pack is not None and pack.used + size > len(pack.buffer):
            pack.closed = True  # does not fit: close it short of the target (huge blobs only)
            del self._open[type]
            ready = pack if pack.ready else None
            pack = None
        if pack is None:
            pack = self._open[type] = OpenPack(type, self._buffer(size))
        offset = pack.used
        pack.used += size
        pack.writers += 1
        pack.blobs.append(PackedBlob(type, blob_id, offset, size, raw_length))
        if pack.used >= self.target:
            pack.closed = True
            del self._open[type]
        return pack, offset, ready

    def filled(self, pack: OpenPack) -> bool:
        """A reserved slot of ``pack`` is filled; True when the pack is now ready to write."""
        pack.writers -= 1
        return pack.ready

    def close_all(self) -> list[OpenPack]:
        """Close every open pack; return those ready to write (all of them once writers are done)."""
        packs = [p for p in self._open.values() if p.blobs]
        self._open = {}
        for p in packs:
            p.closed = True
        return [p for p in packs if p.ready]

    def recycle(self, pack: OpenPack) -> None:
        """Take a written (or dropped) pack's buffer back for reuse."""
        buf = pack.buffer
        self.live -= 1
        if len(buf) == self.capacity and len(self._pool) < _POOL_SIZE:
            self._pool.append(buf)

    def _buffer(self, size: int) -> mmap.mmap:
        self.live += 1
        if size <= self.capacity and self._pool:
            return self._pool.pop()
        return lazy_buffer(max(size, self.capacity))
