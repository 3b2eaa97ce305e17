"""Reading packs back from storage: a whole pack, or just its header (design §7).

Every read is bounded first: a whole pack by ``MAX_PACK_BYTES``, a header by the
pack's listed size and ``MAX_PACK_HEADER`` (checked in ``pack.header_length``),
so a trailer that claims gigabytes costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from amber.errors import IntegrityError, ObjectTooLarge
from amber.repository.limits import MAX_PACK_BYTES
from amber.repository.pack import HEADER_LEN_SIZE, PackedBlob, decode_header, header_length, parse_pack
from amber.storage.base import Backend, FileType, Handle

_HEADER_GUESS = 64 * 1024  # one ranged load reads most pack headers whole


def read_pack(
    backend: Backend, pack: str, decrypt: Callable[[bytes], bytes], max_data: int
) -> tuple[bytes, list[PackedBlob]]:
    """Load a whole pack and decode its own header (``max_data``: the largest data blob)."""
    data = backend.load(Handle(FileType.PACK, pack), limit=MAX_PACK_BYTES)
    try:
        return data, parse_pack(data, decrypt, max_data)
    except IntegrityError as exc:
        raise type(exc)(f"pack {pack[:16]}: {exc}") from exc


def read_pack_header(
    backend: Backend, pack: str, size: int, decrypt: Callable[[bytes], bytes], max_data: int
) -> list[PackedBlob]:
    """Decode a pack's header with ranged loads: the tail, and more only if needed.

    ``size`` is the listed size; the header length in the trailer is checked
    against it and against MAX_PACK_HEADER before the header is read.
    """
    handle = Handle(FileType.PACK, pack)
    if size < HEADER_LEN_SIZE:
        raise IntegrityError(f"pack {pack[:16]} is too short for a header")
    tail_len = min(size, _HEADER_GUESS)
    tail = backend.load(handle, size - tail_len, tail_len)
    if len(tail) != tail_len:
        raise IntegrityError(f"pack {pack[:16]} is shorter than listed")
    try:
        n = header_length(size, tail[-HEADER_LEN_SIZE:])
    except IntegrityError as exc:
        raise type(exc)(f"pack {pack[:16]}: {exc}") from exc
    if n + HEADER_LEN_SIZE > tail_len:
        tail = backend.load(handle, size - HEADER_LEN_SIZE - n, n + HEADER_LEN_SIZE)
        if len(tail) != n + HEADER_LEN_SIZE:
            raise IntegrityError(f"pack {pack[:16]} is shorter than listed")
    sealed = tail[len(tail) - HEADER_LEN_SIZE - n : len(tail) - HEADER_LEN_SIZE]
    try:
        return decode_header(sealed, size, decrypt, max_data)
    except ObjectTooLarge as exc:
        raise ObjectTooLarge(f"pack {pack[:16]}: {exc}") from exc
