"""A compact in-memory map from 32-byte blob IDs to fixed-size records. Pure, no I/O.

A ``dict[bytes, int]`` costs about 165 bytes per blob (a bytes object, an int
object and a dict slot). Here a blob costs one record: the 32-byte ID followed
by its entry, packed with a ``struct.Struct`` (60 bytes for the index's entry),
in a ``bytes`` "bucket" chosen by the ID's hash. A lookup is one C-level
``bytes.find`` in a bucket of a few records; a hit only counts at a record
boundary, because an ID's bytes may also appear across two records. The number
of buckets is multiplied by ``GROWTH`` as the table grows (each bucket splits by
the next hash bits), so a bucket holds ``MAX_LOAD / GROWTH`` to ``MAX_LOAD``
records on average at any size. Splitting is the costly part of inserting (a
Python loop over records); growing four-fold moves a record 1.33 times on
average where doubling moves it twice.

Python's ``hash`` of bytes is keyed per process (SipHash), so buckets stay even
for any set of IDs, not only for the uniformly random IDs of a repository.

Buckets are immutable ``bytes`` rather than bytearrays: a bytes object keeps its
data inline (one allocation, one cache miss less per lookup) and has no growth
slack, about 12% less memory. An insert rebuilds its bucket, which is a copy of
a few hundred bytes.

The first byte of an entry is a flags byte that ``set_bits`` and ``clear_bits``
change without unpacking the entry (the index keeps its "used" mark there).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

ID_SIZE = 32
MAX_LOAD = 16  # average records per bucket before the buckets grow
GROWTH = 4  # a power of two

Entry = tuple[Any, ...]


class BlobTable:
    """Blob ID (exactly 32 bytes) -> an entry of the given struct layout."""

    __slots__ = ("_buckets", "_count", "_entry", "_growths", "_limit", "_mask", "_record")

    def __init__(self, entry: struct.Struct) -> None:
        self._entry = entry
        self._record = ID_SIZE + entry.size
        self._buckets: list[bytes] = [b""]
        self._mask = 0
        self._count = 0
        self._limit = MAX_LOAD
        self._growths = 0  # odd while growing: a lookup that misses then searches again

    def __len__(self) -> int:
        return self._count

    # Threads: lookups (``in``, ``get``) may run while one writer changes the
    # table; writers (add, set_bits, clear_bits, keep_if) must not overlap each
    # other or an iteration (the blob store adds under its lock). A bucket is
    # replaced, never changed, so a lookup sees it before or after an insert.
    # Only growing moves records between buckets: a lookup that misses while a
    # growth began or ran searches again, like a sequence lock.
    #
    # The find loop is repeated in the methods below: a shared helper would cost
    # a Python call per lookup. A hit at an offset that is not a multiple of the
    # record size lies across two records: search on from the next record.
    def __contains__(self, blob_id: object) -> bool:
        record = self._record
        while True:
            growths = self._growths
            try:
                bucket = self._buckets[hash(blob_id) & self._mask]
                pos = bucket.find(blob_id)  # type: ignore[arg-type]
            except TypeError:  # not bytes-like, like a dict of bytes keys would say
                return False
            while pos % record:
                if pos < 0:
                    break
                pos = bucket.find(blob_id, pos - pos % record + record)  # type: ignore[arg-type]
            else:
                return type(blob_id) is bytes and len(blob_id) == ID_SIZE
            if growths == self._growths and not growths & 1:
                return False
            time.sleep(0)  # let the growing thread finish

    def get(self, blob_id: bytes) -> Entry | None:
        record = self._record
        while True:
            growths = self._growths
            bucket = self._buckets[hash(blob_id) & self._mask]
            pos = bucket.find(blob_id)
            while pos % record:
                if pos < 0:
                    break
                pos = bucket.find(blob_id, pos - pos % record + record)
            else:
                return self._entry.unpack_from(bucket, pos + ID_SIZE) if len(blob_id) == ID_SIZE else None
            if growths == self._growths and not growths & 1:
                return None
            time.sleep(0)

    def add(self, blob_id: bytes, entry: bytes) -> bytes | None:
        """Insert ``blob_id`` with a packed ``entry`` unless the ID is present.

        Returns the present packed entry, or None when inserted.
        """
        if len(blob_id) != ID_SIZE or len(entry) != self._entry.size:
            raise ValueError("wrong blob ID or entry size")
        i = hash(blob_id) & self._mask
        bucket = self._buckets[i]
        pos = bucket.find(blob_id)
        record = self._record
        while pos % record:
            if pos < 0:
                break
            pos = bucket.find(blob_id, pos - pos % record + record)
        else:
            return bucket[pos + ID_SIZE : pos + record]
        self._buckets[i] = b"".join((bucket, blob_id, entry))
        self._count += 1
        if self._count > self._limit:
            self._grow()
        return None

    def add_many(self, records: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes, bytes]]:
        """:meth:`add` for many records: the table grows to its final size first, and each
        bucket is rebuilt once (loading an index: several times faster than one by one).

        Returns (blob ID, present packed entry, refused packed entry), in no particular order,
        for every record whose ID was present or came earlier in ``records`` (the first one
        wins, as with add).
        """
        size = self._entry.size
        while self._count + len(records) > self._limit:
            self._grow()
        mask, buckets = self._mask, self._buckets
        groups: list[list[bytes]] = [[] for _ in range(mask + 1)]
        for blob_id, entry in records:
            if len(blob_id) != ID_SIZE or len(entry) != size:
                raise ValueError("wrong blob ID or entry size")
            groups[hash(blob_id) & mask].append(blob_id + entry)
        repeated = len(dict(records)) != len(records)
        present: list[tuple[bytes, bytes, bytes]] = []
        for i, group in enumerate(groups):
            if not group:
                continue
            bucket = buckets[i]
            if bucket or repeated:  # an ID may be present: check each, as add does
                group = self._absent(bucket, group, present)
            buckets[i] = b"".join((bucket, *group))
            self._count += len(group)
        return present

    def _absent(
        self, bucket: bytes, group: list[bytes], present: list[tuple[bytes, bytes, bytes]]
    ) -> list[bytes]:
        """The records of ``group`` whose ID is neither in ``bucket`` nor earlier in the group."""
        record = self._record
        kept: list[bytes] = []
        for rec in group:
            blob_id = rec[:ID_SIZE]
            for where in (bucket, *kept):
                pos = where.find(blob_id)
                while pos % record:
                    if pos < 0:
                        break
                    pos = where.find(blob_id, pos - pos % record + record)
                else:
                    present.append((blob_id, where[pos + ID_SIZE : pos + record], rec[ID_SIZE:]))
                    break
            else:
                kept.append(rec)
        return kept

    def set_bits(self, blob_id: bytes, bits: int) -> int | None:
        """OR ``bits`` into the flags byte of the entry.

        Returns the flags byte as it was, or None when ``blob_id`` is absent.
        """
        i = hash(blob_id) & self._mask
        bucket = self._buckets[i]
        pos = bucket.find(blob_id)
        record = self._record
        while pos % record:
            if pos < 0:
                return None
            pos = bucket.find(blob_id, pos - pos % record + record)
        if len(blob_id) != ID_SIZE:
            return None
        at = pos + ID_SIZE
        old = bucket[at]
        if old | bits != old:
            self._buckets[i] = b"".join((bucket[:at], bytes((old | bits,)), bucket[at + 1 :]))
        return old

    def clear_bits(self, bits: int) -> None:
        """Clear ``bits`` in the flags byte of every entry."""
        table = bytes(b & ~bits & 0xFF for b in range(256))
        record = self._record
        buckets = self._buckets
        for i, bucket in enumerate(buckets):
            flags = bucket[ID_SIZE::record]
            cleared = flags.translate(table)
            if cleared != flags:
                changed = bytearray(bucket)
                changed[ID_SIZE::record] = cleared
                buckets[i] = bytes(changed)

    def items(self) -> Iterator[tuple[bytes, Entry]]:
        """Every (ID, entry), bucket by bucket."""
        record, unpack = self._record, self._entry.unpack_from
        for bucket in self._buckets:
            for pos in range(0, len(bucket), record):
                yield bucket[pos : pos + ID_SIZE], unpack(bucket, pos + ID_SIZE)

    def entries(self) -> Iterator[Entry]:
        record, unpack = self._record, self._entry.unpack_from
        for bucket in self._buckets:
            for pos in range(ID_SIZE, len(bucket), record):
                yield unpack(bucket, pos)

    def keep_if(self, keep: Callable[[Entry], bool]) -> None:
        """Remove every record whose entry fails ``keep``, one bucket at a time."""
        record, unpack = self._record, self._entry.unpack_from
        buckets = self._buckets
        for i, bucket in enumerate(buckets):
            kept = [
                bucket[pos : pos + record]
                for pos in range(0, len(bucket), record)
                if keep(unpack(bucket, pos + ID_SIZE))
            ]
            if len(kept) * record != len(bucket):
                self._count -= len(bucket) // record - len(kept)
                buckets[i] = b"".join(kept)

    def _grow(self) -> None:
        """Multiply the buckets by GROWTH: bucket i's records spread over i, i + n, i + 2n, ...

        by the next hash bits, one bucket at a time, so the table is never held
        twice. Lookups that miss meanwhile search again (see above). Should this
        fail half-way (MemoryError), records are lost from this in-memory table
        only; the operation that added fails, and index files are untouched.
        """
        buckets = self._buckets
        n = self._mask + 1
        shift, ways, record = n.bit_length() - 1, GROWTH - 1, self._record
        self._growths += 1
        try:
            buckets.extend([b""] * (n * GROWTH - len(buckets)))
            parts: list[list[bytes]] = [[] for _ in range(GROWTH)]
            for i in range(n):
                bucket = buckets[i]
                for pos in range(0, len(bucket), record):
                    parts[hash(bucket[pos : pos + ID_SIZE]) >> shift & ways].append(
                        bucket[pos : pos + record]
                    )
                for j in range(1, GROWTH):
                    buckets[i + j * n] = b"".join(parts[j])
                    parts[j].clear()
                if len(parts[0]) * record != len(bucket):
                    buckets[i] = b"".join(parts[0])
                parts[0].clear()
            self._mask = n * GROWTH - 1
            self._limit = MAX_LOAD * n * GROWTH
        finally:
            self._growths += 1
