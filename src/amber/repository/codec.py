"""Blob encoding (design §6): compress when it pays, seal; and open, decompress, verify.

Thread-safe: zstd contexts and scratch buffers are per thread.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import zstandard

from amber.errors import IntegrityError, ObjectTooLarge, is_native_panic
from amber.repository.crypto import OVERHEAD
from amber.repository.index import Location
from amber.repository.limits import MAX_PACK_BYTES, MAX_TREE_BYTES, data_blob_limit
from amber.repository.pack import BlobType
from amber.repository.sealing import BLOB_KIND, Sealer

_ZSTD_MAX_WINDOW = 1 << 27
_SCRATCH_MIN = 1 << 20
_PASSING_MIN = 128 * 1024  # a smaller blob is decoded into new bytes: cheaper than a buffer's upkeep
_PROBE = 16 * 1024  # bytes per sample in the compressibility probe
_PROBE_MIN = 256 * 1024  # smaller blobs are compressed without a probe


class EncodedBlob(NamedTuple):
    """A stored blob after decryption (§6): what was sealed, and its plaintext.

    ``payload`` is the zstd frame when ``raw_length`` > 0, else the plaintext
    itself. ``plain`` has been verified against the blob's ID. Either may be a
    view of a per-thread buffer that the next blob read reuses.
    """

    payload: bytes | memoryview
    raw_length: int
    plain: bytes | memoryview


class BlobCodec:
    """``max_data``: the largest plaintext a data blob may decode to (the chunker's maximum
    and slack); a tree decodes to at most ``MAX_TREE_BYTES``. Larger is refused unread."""

    def __init__(
        self, sealer: Sealer, compression_level: int = 3, max_data: int = data_blob_limit(8 << 20)
    ) -> None:
        self.sealer = sealer
        self.key = sealer.key
        self.compression_level = compression_level
        self.max_data = max_data
        self._local = threading.local()

    def plain_limit(self, type: BlobType) -> int:
        """The most bytes a blob of ``type`` may hold in plaintext."""
        return MAX_TREE_BYTES if type is BlobType.TREE else self.max_data

    # -- writing ----------------------------------------------------------
    def compress(self, data: bytes | memoryview) -> tuple[bytes | memoryview, int]:
        """The payload to seal and its raw length: zstd when it saves over 1/32, else ``data`` (0)."""
        if self.compression_level > 0 and len(data) > 64:
            if len(data) >= _PROBE_MIN and not self._worth_compressing(data):
                return data, 0
            packed = self._compressor().compress(data)
            if len(packed) < len(data) - len(data) // 32:
                return packed, len(data)
        return data, 0

    def _worth_compressing(self, data: bytes | memoryview) -> bool:
        """Compress three samples (start, middle, end) before a large blob: already
        compressed data (media, archives) then costs neither the compression nor an
        output buffer of its size, as with borg's ``auto`` mode."""
        view, n = memoryview(data), len(data)
        compress = self._compressor().compress
        stored = 0
        for at in (0, (n - _PROBE) // 2, n - _PROBE):
            stored += len(compress(view[at : at + _PROBE]))
        return stored < 3 * _PROBE - (3 * _PROBE) // 32

    def encode(self, type: BlobType, blob_id: bytes, data: bytes | memoryview) -> tuple[bytes, int]:
        """Compress when it pays, then encrypt: a blob as a pack stores it."""
        payload, raw_length = self.compress(data)
        return self.sealer.seal(BLOB_KIND[type], payload, blob_id), raw_length

    # -- reading ----------------------------------------------------------
    def decode(self, blob_id: bytes, sealed: bytes | memoryview, raw_length: int, type: BlobType) -> bytes:
        """The verified plaintext of a sealed blob of ``type``."""
        self._check_lengths(blob_id, len(sealed), raw_length, type)
        plain = self.sealer.open(BLOB_KIND[type], sealed, blob_id)
        if raw_length:
            plain = self._decompress(blob_id, plain, raw_length)
        if self.key.blob_id(plain) != blob_id:
            raise IntegrityError(f"blob {blob_id.hex()[:16]}: content does not match its ID")
        return plain

    def decode_passing(
        self, blob_id: bytes, sealed: bytes | memoryview, raw_length: int, type: BlobType
    ) -> bytes | memoryview:
        """Like :meth:`decode`, for a caller done with the plaintext before it reads the next
        blob (a restore writes it out): a large blob is decrypted into a per-thread buffer,
        which costs no allocation and no page faults."""
        if len(sealed) < _PASSING_MIN:
            return self.decode(blob_id, sealed, raw_length, type)
        return self.open(blob_id, sealed, raw_length, type).plain

    def open(
        self, blob_id: bytes, sealed: bytes | memoryview, raw_length: int, type: BlobType
    ) -> EncodedBlob:
        """Like :meth:`decode`, keeping the encoded payload too (decrypted into a per-thread buffer)."""
        if len(sealed) < OVERHEAD:
            raise IntegrityError(f"blob {blob_id.hex()[:16]}: ciphertext too short")
        self._check_lengths(blob_id, len(sealed), raw_length, type)
        payload = self._scratch("open_buf", len(sealed) - OVERHEAD)
        self.sealer.open_into(BLOB_KIND[type], sealed, payload, blob_id)
        plain: bytes | memoryview = payload
        if raw_length:
            plain = self._decompress(blob_id, payload, raw_length)
        if self.key.blob_id(plain) != blob_id:
            raise IntegrityError(f"blob {blob_id.hex()[:16]}: content does not match its ID")
        return EncodedBlob(payload, raw_length, plain)

    def check_location(self, blob_id: bytes, loc: Location) -> None:
        """Refuse an index entry whose lengths exceed its type's limit, before its range is read."""
        self._check_lengths(blob_id, loc.length, loc.raw_length, loc.type)
        if loc.offset + loc.length > MAX_PACK_BYTES:
            raise ObjectTooLarge(f"blob {blob_id.hex()[:16]}: index places it past the largest pack size")

    def _check_lengths(self, blob_id: bytes, sealed_length: int, raw_length: int, type: BlobType) -> None:
        limit = self.plain_limit(type)
        if raw_length > limit or sealed_length - OVERHEAD > limit:
            size = max(raw_length, sealed_length - OVERHEAD)
            raise ObjectTooLarge(
                f"{type.name.lower()} blob {blob_id.hex()[:16]}: {size} bytes, over the {limit}-byte limit"
            )

    # -- per-thread state -------------------------------------------------
    def _decompress(self, blob_id: bytes, payload: bytes | memoryview, raw_length: int) -> bytes:
        """Inflate to exactly ``raw_length`` bytes (already checked against the type's limit),
        never more: a frame that states another size is refused before it is inflated (zstd
        would allocate the size the frame states), one that does not is cut at ``raw_length``."""
        try:
            stated = zstandard.frame_content_size(payload)
            if stated >= 0 and stated != raw_length:
                raise IntegrityError(
                    f"blob {blob_id.hex()[:16]}: bad compression (the frame states {stated} bytes, "
                    f"the index {raw_length})"
                )
            if stated == raw_length:
                # The frame states its size, and it is the expected one: the one-shot path
                # (a third cheaper than bounding the output, for small blobs).
                plain = self._decompressor().decompress(payload)
            else:  # no size in the frame: the output buffer is raw_length, and no bigger
                plain = self._decompressor().decompress(payload, max_output_size=raw_length)
        except zstandard.ZstdError as exc:
            raise IntegrityError(f"blob {blob_id.hex()[:16]}: bad compression") from exc
        except BaseException as exc:
            if not is_native_panic(exc):
                raise
            raise IntegrityError(f"blob {blob_id.hex()[:16]}: bad compression ({exc})") from exc
        if len(plain) != raw_length:
            raise IntegrityError(f"blob {blob_id.hex()[:16]}: decompressed to an unexpected length")
        return plain

    def _compressor(self) -> zstandard.ZstdCompressor:
        c = getattr(self._local, "cctx", None)
        if c is None or getattr(self._local, "level", None) != self.compression_level:
            c = zstandard.ZstdCompressor(level=self.compression_level)
            self._local.cctx = c
            self._local.level = self.compression_level
        return c

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        d = getattr(self._local, "dctx", None)
        if d is None:
            d = zstandard.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW)
            self._local.dctx = d
        return d

    def _scratch(self, name: str, size: int) -> memoryview:
        """``size`` bytes of a per-thread buffer reused from blob to blob (no allocation,
        no page faults for large blobs). A buffer still viewed is replaced, not resized."""
        buf: bytearray | None = getattr(self._local, name, None)
        if buf is None or len(buf) < size:
            buf = bytearray(max(size, _SCRATCH_MIN))
            setattr(self._local, name, buf)
        return memoryview(buf)[:size]
