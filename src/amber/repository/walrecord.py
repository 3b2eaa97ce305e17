"""The plaintext of archived WAL objects (design §12d). Pure: no I/O.

Both forms start with the same header::

    codec(1) ‖ raw length(8, big-endian) ‖ SHA-256 of the WAL bytes(32)

* codec 0 (raw) or 1 (zstd): a **sealed WAL file** (format 2), the payload follows;
* codec 2: a **WAL record** (format 3): the file's content is in data blobs, and the
  record lists them in order, each with where it was stored when the record was
  written (a hint: prune may repack it; readers fall back to the index)::

      count(4) ‖ count × (blob ID(32) ‖ pack(32) ‖ offset(8) ‖ length(4) ‖ raw length(4))
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from amber.errors import IntegrityError
from amber.repository.limits import MAX_CHUNK_MAX

HEADER = struct.Struct(">BQ32s")
RAW, ZSTD, RECORD = 0, 1, 2
_COUNT = struct.Struct(">I")
_REF = struct.Struct(">32s32sQII")
_MAX_SEALED = MAX_CHUNK_MAX + (64 << 10)  # a chunk, compressed or not, plus sealing


@dataclass(frozen=True)
class BlobRef:
    """One blob of a WAL record, and where it was stored (pack, offset, sealed length, raw length)."""

    id: bytes
    pack: str
    offset: int
    length: int
    raw_length: int  # 0: stored uncompressed (as in the index)


@dataclass(frozen=True)
class WalRecord:
    size: int
    sha256: bytes
    blobs: tuple[BlobRef, ...]


def encode_record(record: WalRecord) -> bytes:
    parts = [HEADER.pack(RECORD, record.size, record.sha256), _COUNT.pack(len(record.blobs))]
    parts += [_REF.pack(b.id, bytes.fromhex(b.pack), b.offset, b.length, b.raw_length) for b in record.blobs]
    return b"".join(parts)


def decode_record(name: str, plain: bytes, max_size: int) -> WalRecord:
    """A record's plaintext, or IntegrityError; ``max_size`` bounds the WAL size it may claim."""
    if len(plain) < HEADER.size + _COUNT.size:
        raise IntegrityError(f"wal/{name}: record too short")
    codec, size, digest = HEADER.unpack_from(plain)
    (count,) = _COUNT.unpack_from(plain, HEADER.size)
    start = HEADER.size + _COUNT.size
    if codec != RECORD or size > max_size or len(plain) != start + count * _REF.size:
        raise IntegrityError(f"wal/{name}: malformed record")
    blobs = []
    for i in range(count):
        blob_id, pack, offset, length, raw_length = _REF.unpack_from(plain, start + i * _REF.size)
        if length > _MAX_SEALED or raw_length > MAX_CHUNK_MAX:  # no read or buffer beyond a chunk's
            raise IntegrityError(f"wal/{name}: record names a blob larger than any chunk")
        blobs.append(BlobRef(blob_id, pack.hex(), offset, length, raw_length))
    return WalRecord(size, digest, tuple(blobs))
