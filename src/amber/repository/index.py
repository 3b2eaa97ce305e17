"""The blob index: which pack holds each blob, and where. Pure, no I/O.

An index file (plaintext before encryption) is msgpack::

    {"packs": [[pack_id_hex, [[type, blob_id, offset, length, raw_length], ...]], ...],
     "supersedes": [index_id_hex, ...]}

A deletion marker (prune's phase 1, design §13) is an index file with no packs
and a ``pending`` map: mark time, the doomed packs, and the lock holders that
were live at the mark. Readers that do not know ``pending`` see an empty index.

In memory, packs are interned to small integers and each blob is one 60-byte
record (ID and packed location) in a compact ``BlobTable``: about 65 bytes per
blob with the table's overhead, where a dict of bytes to int took about 165. One
bit of each entry is a "used" mark that prune sets while walking snapshots, so
the set of referenced blobs costs no extra memory.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterable, Iterator

import msgspec

from amber.errors import IntegrityError, ObjectTooLarge
from amber.repository.blobtable import BlobTable
from amber.repository.crypto import OVERHEAD
from amber.repository.limits import MAX_PACK_BYTES, MAX_TREE_BYTES, data_blob_limit
from amber.repository.pack import BlobType, PackedBlob


class PendingDeletion(msgspec.Struct, frozen=True):
    """Packs that prune took out of the index and will delete (phase 2)."""

    time: float  # mark time, the marking prune's clock (for the grace period)
    packs: list[str]
    holders: list[tuple[str, int, float]] = []  # (hostname, pid, acquired) of locks live at the mark


class IndexFile(msgspec.Struct, frozen=True):
    packs: list[tuple[str, list[tuple[int, bytes, int, int, int]]]]
    supersedes: list[str] = []
    pending: PendingDeletion | None = None


# An entry is four fixed-width fields: (pack number << 2 | used << 1 | type,
# offset, length, raw_length), 28 bytes little-endian; with the ID, 60 bytes per
# blob. Type and used are in the first byte, which the table changes in place.
_ENTRY = struct.Struct("<IQQQ")
_USED = 2
_MAX_FIELD = 1 << 48  # as in the former int encoding: larger values are garbage
_MAX_PACKS = 1 << 30
_TYPES = (BlobType(0), BlobType(1))  # indexing a tuple is much cheaper than calling the enum
Entry = tuple[int, int, int, int]


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


class PackUsage(msgspec.Struct):
    """What prune needs to know about one indexed pack."""

    blobs: int = 0
    bytes: int = 0  # sum of sealed blob lengths (header not included)
    used_blobs: int = 0
    used_bytes: int = 0
    type: int = 0  # type of its blobs (a pack never mixes types)


class Index:
    """Blob ID -> location, for every indexed pack."""

    def __init__(self) -> None:
        self._entries = BlobTable(_ENTRY)
        self._pack_names: list[str] = []
        self._pack_numbers: dict[str, int] = {}
        self._pack_blobs: dict[int, int] = {}
        # rows for a blob ID that is already indexed elsewhere (a second copy);
        # rare, kept so index files can be rewritten without losing rows
        self._duplicates: list[tuple[bytes, Entry]] = []

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, blob_id: object) -> bool:
        return blob_id in self._entries

    def _pack_number(self, pack: str) -> int:
        n = self._pack_numbers.get(pack)
        if n is None:
            n = len(self._pack_names)
            if n >= _MAX_PACKS:
                raise IntegrityError("too many packs in the index")
            self._pack_names.append(pack)
            self._pack_numbers[pack] = n
        return n

    def _add(self, blob_id: bytes, packed: bytes) -> None:
        old = self._entries.add(blob_id, packed)
        if old is not None and (old[0] & ~_USED != packed[0] or old[1:] != packed[1:]):
            self._duplicates.append((blob_id, _ENTRY.unpack(packed)))

    def add_pack(self, pack: str, blobs: Iterable[PackedBlob]) -> None:
        self.add_rows(pack, ((int(b.type), b.id, b.offset, b.length, b.raw_length) for b in blobs))

    def add_rows(self, pack: str, rows: Iterable[tuple[int, bytes, int, int, int]]) -> None:
        """Index the rows of one pack, as an index file lists them: (type, id, offset, length, raw_length)."""
        self.add_packs([(pack, rows)])

    def add_packs(self, packs: Iterable[tuple[str, Iterable[tuple[int, bytes, int, int, int]]]]) -> None:
        """:meth:`add_rows` for many packs, in one pass over the table (loading an index)."""
        records: list[tuple[bytes, bytes]] = []
        pack_entry = _ENTRY.pack
        for pack, rows in packs:
            word = self._pack_number(pack) << 2
            count = len(records)
            for type_, blob_id, offset, length, raw_length in rows:
                if not 0 <= offset | length | raw_length < _MAX_FIELD or type_ >> 1:
                    raise IntegrityError("index entry out of range")
                records.append((blob_id, pack_entry(word | type_, offset, length, raw_length)))
            self._pack_blobs[word >> 2] = self._pack_blobs.get(word >> 2, 0) + len(records) - count
        for blob_id, old, packed in self._entries.add_many(records):
            if old[0] & ~_USED != packed[0] or old[1:] != packed[1:]:
                self._duplicates.append((blob_id, _ENTRY.unpack(packed)))

    def _location(self, e: Entry) -> Location:
        word, offset, length, raw_length = e
        return Location(self._pack_names[word >> 2], offset, length, raw_length, _TYPES[word & 1])

    def lookup(self, blob_id: bytes) -> Location | None:
        e = self._entries.get(blob_id)
        if e is None:
            return None
        word, offset, length, raw_length = e
        return Location(self._pack_names[word >> 2], offset, length, raw_length, _TYPES[word & 1])

    def blob_type(self, blob_id: bytes) -> BlobType | None:
        e = self._entries.get(blob_id)
        return None if e is None else _TYPES[e[0] & 1]

    def packs(self) -> set[str]:
        return {self._pack_names[n] for n in self._pack_blobs}

    def blobs(self) -> Iterator[tuple[bytes, Location]]:
        for blob_id, e in self._entries.items():
            yield blob_id, self._location(e)

    # -- prune support ------------------------------------------------------
    def mark_used(self, blob_id: bytes) -> bool | None:
        """Set the used bit. None: not indexed; False: already marked; True: newly marked."""
        flags = self._entries.set_bits(blob_id, _USED)
        return None if flags is None else not flags & _USED

    def is_used(self, blob_id: bytes) -> bool:
        e = self._entries.get(blob_id)
        return e is not None and bool(e[0] & _USED)

    def clear_used(self) -> None:
        self._entries.clear_bits(_USED)

    def usage(self) -> dict[str, PackUsage]:
        """Per pack: all rows and the rows whose blob is marked used."""
        stats: dict[int, PackUsage] = {n: PackUsage() for n in self._pack_blobs}
        for word, _, length, _ in self._entries.entries():
            u = stats[word >> 2]
            u.blobs += 1
            u.bytes += length
            u.type = word & 1
            if word & _USED:
                u.used_blobs += 1
                u.used_bytes += length
        for _, (word, _, length, _) in self._duplicates:
            u = stats[word >> 2]
            u.blobs += 1
            u.bytes += length
            u.type = word & 1
        return {self._pack_names[n]: u for n, u in stats.items()}

    def packs_with_unused(self, blob_ids: Iterable[bytes]) -> set[str]:
        """Packs holding a row of one of ``blob_ids`` that is not marked used (second copies included)."""
        wanted = set(blob_ids)
        found: set[str] = set()
        for blob_id in wanted:
            e = self._entries.get(blob_id)
            if e is not None and not e[0] & _USED:
                found.add(self._pack_names[e[0] >> 2])
        for blob_id, (word, _, _, _) in self._duplicates:
            if blob_id in wanted:
                found.add(self._pack_names[word >> 2])
        return found

    def used_in(self, packs: set[str]) -> dict[str, list[tuple[bytes, Location]]]:
        """The used blobs of the given packs, grouped by pack (to repack them)."""
        wanted = {self._pack_numbers[p] for p in packs if p in self._pack_numbers}
        found: dict[str, list[tuple[bytes, Location]]] = {p: [] for p in packs}
        for blob_id, e in self._entries.items():
            if e[0] & _USED and e[0] >> 2 in wanted:
                loc = self._location(e)
                found[loc.pack].append((blob_id, loc))
        return found

    def pack_rows(self, packs: set[str]) -> dict[str, list[PackedBlob]]:
        """Every row (duplicates included) of the given packs, in pack order."""
        wanted = {self._pack_numbers[p] for p in packs if p in self._pack_numbers}
        rows: dict[str, list[PackedBlob]] = {}
        for blob_id, e in itertools.chain(self._entries.items(), self._duplicates):
            if e[0] >> 2 in wanted:
                loc = self._location(e)
                rows.setdefault(loc.pack, []).append(
                    PackedBlob(loc.type, blob_id, loc.offset, loc.length, loc.raw_length)
                )
        for blobs in rows.values():
            blobs.sort(key=lambda b: b.offset)
        return rows

    def remove_packs(self, packs: set[str]) -> None:
        """Forget every row in ``packs``; a second copy elsewhere takes over."""
        gone = {self._pack_numbers[p] for p in packs if p in self._pack_numbers}
        if not gone:
            return
        self._entries.keep_if(lambda e: e[0] >> 2 not in gone)
        dups, self._duplicates = self._duplicates, []
        for blob_id, e in dups:
            if e[0] >> 2 not in gone:
                self._add(blob_id, _ENTRY.pack(*e))
        for n in gone:
            self._pack_blobs.pop(n, None)


def encode_index(packs: dict[str, list[PackedBlob]], supersedes: Iterable[str] = ()) -> bytes:
    body = {
        "packs": [
            (pack, [(int(b.type), b.id, b.offset, b.length, b.raw_length) for b in blobs])
            for pack, blobs in packs.items()
        ],
        "supersedes": list(supersedes),
    }
    return msgspec.msgpack.encode(body)


def encode_marker(pending: PendingDeletion) -> bytes:
    """A deletion marker: an index file without packs that carries ``pending``."""
    return msgspec.msgpack.encode({"packs": [], "supersedes": [], "pending": pending})


def decode_index(data: bytes, max_data: int = data_blob_limit(8 << 20)) -> IndexFile:
    """Decode an index file. A row whose lengths exceed its blob type's limit (design §3,
    "Size limits"; ``max_data`` for data blobs) or that ends past the largest possible pack
    is refused here, so no reader ever allocates what it claims."""
    try:
        doc = msgspec.msgpack.decode(data, type=IndexFile)
    except (msgspec.DecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        raise IntegrityError(f"malformed index: {exc}") from exc
    plain = (max_data, MAX_TREE_BYTES)
    for _, rows in doc.packs:
        for type_, blob_id, offset, length, raw_length in rows:
            if type_ not in (0, 1) or len(blob_id) != 32 or min(offset, length, raw_length) < 0:
                raise IntegrityError("malformed index entry")
            most = plain[type_]
            if raw_length > most or length > most + OVERHEAD or offset + length > MAX_PACK_BYTES:
                raise ObjectTooLarge(
                    f"index entry for blob {blob_id.hex()[:16]} claims {length} bytes at offset {offset} "
                    f"({raw_length} uncompressed), over the limits for a {_TYPES[type_].name.lower()} blob"
                )
    return doc


def index_file_blobs(index: IndexFile) -> Iterator[tuple[str, list[PackedBlob]]]:
    for pack, rows in index.packs:
        yield pack, [PackedBlob(BlobType(t), i, o, n, r) for t, i, o, n, r in rows]
