"""Pack file encoding. Pure: bytes in, bytes out.

Layout of a pack::

    blob_0 || blob_1 || ... || blob_n-1 || encrypted_header || header_len (u32 LE)

Each blob is independently encrypted (``nonce || ct || tag``). The header
plaintext is a msgpack array of ``[type, length, raw_length, id]`` per blob in
order; offsets follow from the lengths. ``raw_length`` is the uncompressed
plaintext length, or 0 when the blob is stored uncompressed.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import msgspec

from amber.errors import IntegrityError, ObjectTooLarge
from amber.repository.crypto import OVERHEAD
from amber.repository.limits import MAX_PACK_HEADER, MAX_TREE_BYTES, data_blob_limit

HEADER_LEN_SIZE = 4
DEFAULT_MAX_DATA = data_blob_limit(8 << 20)  # the default chunker's
_HEADER_LEN = struct.Struct("<I")


class BlobType(enum.IntEnum):
    DATA = 0
    TREE = 1


@dataclass(frozen=True, slots=True)
class PackedBlob:
    """Where one blob lives inside a pack."""

    type: BlobType
    id: bytes
    offset: int
    length: int
    raw_length: int  # 0: stored uncompressed


def pack_id(data: bytes | bytearray | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def encode_header(blobs: Sequence[PackedBlob], encrypt: Callable[[bytes], bytes]) -> bytes:
    """Return ``encrypted_header || header_len`` for the given blobs."""
    plain = msgspec.msgpack.encode([[int(b.type), b.length, b.raw_length, b.id] for b in blobs])
    sealed = encrypt(plain)
    return sealed + _HEADER_LEN.pack(len(sealed))


def header_length(pack_size: int, trailer: bytes, max_header: int = MAX_PACK_HEADER) -> int:
    """Read the encrypted header's length from the last 4 bytes of a pack of ``pack_size``
    bytes (its real size), before anything that long is read or allocated."""
    if len(trailer) != HEADER_LEN_SIZE:
        raise IntegrityError("pack too short for a header")
    (n,) = _HEADER_LEN.unpack(trailer)
    if n + HEADER_LEN_SIZE > pack_size:
        raise IntegrityError(f"pack header length ({n} bytes) exceeds the pack's size ({pack_size} bytes)")
    if n > max_header:
        raise ObjectTooLarge(f"pack header length ({n} bytes) is over the {max_header}-byte limit")
    return int(n)


def decode_header(
    sealed: bytes, pack_size: int, decrypt: Callable[[bytes], bytes], max_data: int = DEFAULT_MAX_DATA
) -> list[PackedBlob]:
    """Decode an encrypted header and validate it against the pack size, and each row
    against its blob type's limits (design §3; ``max_data``: the largest data blob
    plaintext), so ``repair index`` never copies a row that index loading refuses."""
    plain_limit = (max_data, MAX_TREE_BYTES)
    plain = decrypt(sealed)
    try:
        rows = msgspec.msgpack.decode(plain, type=list[tuple[int, int, int, bytes]])
    except msgspec.DecodeError as exc:
        raise IntegrityError(f"malformed pack header: {exc}") from exc
    blobs: list[PackedBlob] = []
    offset = 0
    data_end = pack_size - len(sealed) - HEADER_LEN_SIZE
    for type_, length, raw_length, id_ in rows:
        if type_ not in (0, 1) or length < 0 or raw_length < 0 or len(id_) != 32:
            raise IntegrityError("malformed pack header entry")
        if raw_length > plain_limit[type_] or length > plain_limit[type_] + OVERHEAD:
            raise ObjectTooLarge(f"pack header: blob {id_.hex()[:16]} is over the limits for its type")
        blobs.append(PackedBlob(BlobType(type_), id_, offset, length, raw_length))
        offset += length
    if offset != data_end:
        raise IntegrityError("pack header does not match pack size")
    return blobs


def parse_pack(
    data: bytes, decrypt: Callable[[bytes], bytes], max_data: int = DEFAULT_MAX_DATA
) -> list[PackedBlob]:
    """Decode the header of a whole pack held in memory."""
    size = len(data)
    n = header_length(size, data[-HEADER_LEN_SIZE:])
    sealed = data[size - HEADER_LEN_SIZE - n : size - HEADER_LEN_SIZE]
    return decode_header(sealed, size, decrypt, max_data)
