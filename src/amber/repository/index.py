"""The blob index: which pack holds each blob, and where. Pure, no I/O.

An index file (plaintext before encryption) is msgpack::

    {"packs": [[pack_id_hex, [[type, blob_id, offset, length, raw_length], ...]], ...],
     "supersedes": [index_id_hex, ...]}

In memory, packs are interned to small integers so an entry costs one tuple.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import msgspec

from amber.errors import IntegrityError
from amber.repository.crypto import OVERHEAD
from amber.repository.pack import BlobType, PackedBlob


class IndexFile(msgspec.Struct, frozen=True):
    packs: list[tuple[str, list[tuple[int, bytes, int, int, int]]]]
    supersedes: list[str] = []


# An entry is one int: pack number | offset | length | raw_length | type, in
# fixed-width fields. One int costs ~48 bytes; a 5-tuple of ints costs ~160.
_TYPE_BITS, _LEN_BITS, _OFF_BITS = 1, 48, 48
_RAW_SHIFT = _TYPE_BITS
_LEN_SHIFT = _RAW_SHIFT + _LEN_BITS
_OFF_SHIFT = _LEN_SHIFT + _LEN_BITS
_PACK_SHIFT = _OFF_SHIFT + _OFF_BITS
_MASK = (1 << 48) - 1


def _encode_entry(pack_no: int, type_: int, offset: int, length: int, raw_length: int) -> int:
    if max(offset, length, raw_length) > _MASK:
        raise IntegrityError("index entry out of range")
    return (
        pack_no << _PACK_SHIFT | offset << _OFF_SHIFT | length << _LEN_SHIFT
        | raw_length << _RAW_SHIFT | type_
    )  # fmt: skip


class Location(msgspec.Struct, frozen=True):
    pack: str
    offset: int
    length: int
    raw_length: int
    type: BlobType

    @property
    def plain_length(self) -> int:
        """Length of the blob's plaintext."""
        return self.raw_length or self.length - OVERHEAD


class Index:
    """Blob ID -> location, for every indexed pack."""

    def __init__(self) -> None:
        self._entries: dict[bytes, int] = {}
        self._pack_names: list[str] = []
        self._pack_numbers: dict[str, int] = {}
        self._pack_blobs: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, blob_id: object) -> bool:
        return blob_id in self._entries

    def _pack_number(self, pack: str) -> int:
        n = self._pack_numbers.get(pack)
        if n is None:
            n = len(self._pack_names)
            self._pack_names.append(pack)
            self._pack_numbers[pack] = n
        return n

    def add_pack(self, pack: str, blobs: Iterable[PackedBlob]) -> None:
        n = self._pack_number(pack)
        count = 0
        for b in blobs:
            self._entries.setdefault(b.id, _encode_entry(n, int(b.type), b.offset, b.length, b.raw_length))
            count += 1
        self._pack_blobs[n] = self._pack_blobs.get(n, 0) + count

    def add_rows(self, pack: str, rows: Iterable[tuple[int, bytes, int, int, int]]) -> None:
        """Like add_pack, from index-file rows, without building PackedBlob objects."""
        n = self._pack_number(pack)
        count = 0
        entries = self._entries
        for type_, blob_id, offset, length, raw_length in rows:
            if blob_id not in entries:
                entries[blob_id] = _encode_entry(n, type_, offset, length, raw_length)
            count += 1
        self._pack_blobs[n] = self._pack_blobs.get(n, 0) + count

    def _location(self, e: int) -> Location:
        return Location(
            self._pack_names[e >> _PACK_SHIFT], (e >> _OFF_SHIFT) & _MASK,
            (e >> _LEN_SHIFT) & _MASK, (e >> _RAW_SHIFT) & _MASK, BlobType(e & 1),
        )  # fmt: skip

    def lookup(self, blob_id: bytes) -> Location | None:
        e = self._entries.get(blob_id)
        return None if e is None else self._location(e)

    def blob_type(self, blob_id: bytes) -> BlobType | None:
        e = self._entries.get(blob_id)
        return None if e is None else BlobType(e & 1)

    def packs(self) -> set[str]:
        return {self._pack_names[n] for n in self._pack_blobs}

    def blobs(self) -> Iterator[tuple[bytes, Location]]:
        for blob_id, e in self._entries.items():
            yield blob_id, self._location(e)


def encode_index(packs: dict[str, list[PackedBlob]], supersedes: Iterable[str] = ()) -> bytes:
    body = IndexFile(
        packs=[
            (pack, [(int(b.type), b.id, b.offset, b.length, b.raw_length) for b in blobs])
            for pack, blobs in packs.items()
        ],
        supersedes=list(supersedes),
    )
    return msgspec.msgpack.encode(body)


def decode_index(data: bytes) -> IndexFile:
    try:
        doc = msgspec.msgpack.decode(data, type=IndexFile)
    except msgspec.DecodeError as exc:
        raise IntegrityError(f"malformed index: {exc}") from exc
    for _, rows in doc.packs:
        for type_, blob_id, offset, length, raw_length in rows:
            if type_ not in (0, 1) or len(blob_id) != 32 or min(offset, length, raw_length) < 0:
                raise IntegrityError("malformed index entry")
    return doc


def index_file_blobs(index: IndexFile) -> Iterator[tuple[str, list[PackedBlob]]]:
    for pack, rows in index.packs:
        yield pack, [PackedBlob(BlobType(t), i, o, n, r) for t, i, o, n, r in rows]
