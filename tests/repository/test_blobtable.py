"""The compact blob table and the Index built on it, against plain dict models.

Table-driven cases pin the edge cases (sizes, misaligned hits, in-place flags);
hypothesis state machines compare BlobTable and Index with a dict under random
operations, over IDs that share long prefixes and IDs that appear misaligned
inside other records.
"""

from __future__ import annotations

import hashlib
import struct
import threading

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from amber.errors import IntegrityError
from amber.repository import blobtable
from amber.repository.blobtable import ID_SIZE, BlobTable
from amber.repository.index import Index, Location, PackUsage
from amber.repository.pack import BlobType, PackedBlob

ENTRY = struct.Struct("<B27s")  # a flags byte and 27 bytes of payload: 60-byte records
RECORD = ID_SIZE + ENTRY.size
MACHINE = settings(
    max_examples=60, stateful_step_count=40, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip


def ident(n: int, prefix: bytes = b"") -> bytes:
    """A 32-byte ID; with a prefix, IDs share all but their last bytes."""
    return prefix + hashlib.sha256(n.to_bytes(8, "little")).digest()[: ID_SIZE - len(prefix)]


def entry(flags: int, payload: bytes = b"") -> bytes:
    return ENTRY.pack(flags, payload)


def bucket_of(table: BlobTable, blob_id: bytes) -> int:
    return hash(blob_id) & table._mask


def spanning_id(table: BlobTable, tail_len: int) -> tuple[bytes, bytes, bytes]:
    """(host ID, host entry, X): once the host is added, X's bytes lie across the
    host's ID and entry in X's own bucket: X = host ID[-tail_len:] + entry[:rest]."""
    payload_len = ID_SIZE - tail_len - 1  # X ends inside the entry's payload
    assert 0 < payload_len <= 27
    for n in range(100_000):
        host = ident(n, b"host")
        payload = hashlib.sha256(host).digest()[:payload_len]
        x = host[-tail_len:] + bytes((0,)) + payload
        if bucket_of(table, x) == bucket_of(table, host):
            return host, entry(0, payload), x
    raise AssertionError("no crafted ID found")


# -- BlobTable: table-driven -------------------------------------------------
@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        (ident(1), True),
        (ident(2), False),
        (ident(1)[:31], False),  # a prefix of a present ID, found at a record boundary
        (ident(1) + b"\0", False),  # the ID and the first entry byte
        (ident(1)[1:] + b"\0", False),  # misaligned by one
        (b"", False),
        ("not bytes", False),
        (None, False),
        (bytearray(ident(1)), False),  # unhashable, as for a dict of bytes
        (0, False),
    ],
)
def test_contains_only_whole_ids(probe: object, expected: bool) -> None:
    table = BlobTable(ENTRY)
    table.add(ident(1), entry(0, b"payload"))
    assert (probe in table) is expected
    if isinstance(probe, bytes):
        assert (table.get(probe) is not None) is expected
        assert (table.set_bits(probe, 1) is not None) is expected


@pytest.mark.parametrize("tail_len", [4, 8, 16, 30])
@pytest.mark.parametrize("size", [0, 5, 40, 300])
def test_misaligned_hit_is_skipped(tail_len: int, size: int) -> None:
    table = BlobTable(ENTRY)
    for n in range(size):
        table.add(ident(n), entry(n % 2, bytes([n % 256])))
    host, host_entry, x = spanning_id(table, tail_len)
    table.add(host, host_entry)
    bucket = table._buckets[bucket_of(table, x)]
    first = bucket.find(x)
    assert first >= 0 and first % RECORD  # the search really meets X misaligned
    assert x not in table and table.get(x) is None and table.set_bits(x, 1) is None
    assert table.add(x, entry(0, b"x")) is None  # so X is new
    assert table.get(x) == (0, b"x".ljust(27, b"\0"))
    assert x in table and len(table) == size + 2
    assert table.set_bits(x, 2) == 0 and table.get(x) == (2, b"x".ljust(27, b"\0"))
    assert table.get(host) == ENTRY.unpack(host_entry)


@pytest.mark.parametrize("tail_len", [1, 3, 16, 27])
def test_hit_across_two_records_is_skipped(tail_len: int) -> None:
    """X = the last bytes of one record's entry + the first bytes of the next record's ID."""
    table = BlobTable(ENTRY)  # up to MAX_LOAD records: one bucket, records in insertion order
    first, second = ident(1), ident(2)
    x = b"\x5a" * tail_len + second[: ID_SIZE - tail_len]
    table.add(first, entry(3, (b"\0" * 27 + x[:tail_len])[-27:]))
    table.add(second, entry(0))
    assert table._buckets[0].find(x) == RECORD - tail_len  # the search really meets it there
    assert x not in table and table.get(x) is None
    assert table.add(x, entry(1, b"mine")) is None and table.get(x) == (1, b"mine".ljust(27, b"\0"))
    assert table.get(first) == (3, (b"\0" * 27 + x[:tail_len])[-27:])


@pytest.mark.parametrize(
    ("blob_id", "packed"),
    [(b"\0" * 31, entry(0)), (b"\0" * 33, entry(0)), (b"\0" * 32, b"\0" * 27), (b"\0" * 32, b"\0" * 29)],
)
def test_add_rejects_wrong_sizes(blob_id: bytes, packed: bytes) -> None:
    table = BlobTable(ENTRY)
    with pytest.raises(ValueError):
        table.add(blob_id, packed)
    assert len(table) == 0


def test_add_keeps_the_first_entry_and_returns_it() -> None:
    table = BlobTable(ENTRY)
    assert table.add(ident(7), entry(1, b"first")) is None
    assert table.add(ident(7), entry(0, b"second")) == entry(1, b"first")
    assert len(table) == 1 and table.get(ident(7)) == (1, b"first".ljust(27, b"\0"))


def test_flags_set_and_clear_in_place() -> None:
    table = BlobTable(ENTRY)
    for n in range(100):
        table.add(ident(n), entry(1 if n % 3 else 0, bytes([n])))
    assert table.set_bits(ident(5), 2) == 1
    assert table.set_bits(ident(5), 2) == 3  # already set: unchanged
    assert table.set_bits(ident(6), 6) == 0
    assert table.get(ident(6)) == (6, bytes([6]).ljust(27, b"\0"))
    table.clear_bits(2)
    assert table.get(ident(5))[0] == 1 and table.get(ident(6))[0] == 4
    assert all(flags & 2 == 0 for flags, _ in table.entries())
    assert table.get(ident(9)) == (0, bytes([9]).ljust(27, b"\0"))  # payload untouched


def test_grows_and_keeps_everything() -> None:
    table = BlobTable(ENTRY)
    ids = [ident(n) for n in range(3000)] + [ident(n, b"\x01" * 28) for n in range(300)]
    for n, blob_id in enumerate(ids):
        assert table.add(blob_id, entry(n % 2, n.to_bytes(4, "little"))) is None
    assert len(table) == len(ids)
    assert len(table._buckets) * blobtable.MAX_LOAD >= len(ids)  # it split
    assert max(len(b) for b in table._buckets) // RECORD <= 8 * blobtable.MAX_LOAD  # and stays even
    assert {i: p[:4] for i, (_, p) in table.items()} == {
        i: n.to_bytes(4, "little") for n, i in enumerate(ids)
    }  # fmt: skip
    assert all(table.get(i) is not None for i in ids)


def test_lookups_never_miss_while_another_thread_grows_the_table() -> None:
    table = BlobTable(ENTRY)
    known = [ident(n, b"known") for n in range(500)]
    for blob_id in known:
        table.add(blob_id, entry(1))
    misses: list[bytes] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            misses.extend(b for b in known if b not in table or table.get(b) is None)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(70_000):  # grows at 1,024, 4,096, 16,384 and 65,536 records
            table.add(ident(n), entry(0))
    finally:
        done.set()
        reader.join()
    assert misses == [] and len(table) == 70_500


def test_keep_if_removes_and_counts() -> None:
    table = BlobTable(ENTRY)
    for n in range(500):
        table.add(ident(n), entry(n % 5, b""))
    table.keep_if(lambda e: e[0] != 0)
    assert len(table) == 400 and sum(1 for _ in table.items()) == 400
    assert ident(0) not in table and ident(1) in table
    assert table.add(ident(0), entry(0, b"back")) is None


# -- BlobTable against a dict --------------------------------------------------
def id_pool() -> list[bytes]:
    shared = b"\xab" * 31
    pool = [ident(n) for n in range(12)] + [shared + bytes([n]) for n in range(6)]
    pool += [ident(n, b"\xab" * 16) for n in range(6)]
    pool += [ident(1)[8:] + ident(2)[:8], ident(3)[31:] + b"\0" * 27 + ident(4)[:4]]  # straddlers
    return pool


POOL = id_pool()


class TableMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.table = BlobTable(ENTRY)
        self.model: dict[bytes, tuple[int, bytes]] = {}

    @rule(i=st.integers(0, len(POOL) - 1), flags=st.integers(0, 255), payload=st.binary(max_size=27))
    def add(self, i: int, flags: int, payload: bytes) -> None:
        blob_id, value = POOL[i], (flags, payload.ljust(27, b"\0"))
        old = self.table.add(blob_id, ENTRY.pack(*value))
        if blob_id in self.model:
            assert old is not None and ENTRY.unpack(old) == self.model[blob_id]
        else:
            assert old is None
            self.model[blob_id] = value

    @rule(
        picks=st.lists(st.tuples(st.integers(0, len(POOL) - 1), st.integers(0, 255)), max_size=12),
        fresh=st.integers(0, 70),
    )
    def add_many(self, picks: list[tuple[int, int]], fresh: int) -> None:
        """Pool IDs (present ones, repeats within the call) and enough new ones to grow the table."""
        records = [(POOL[i], entry(flags)) for i, flags in picks]
        records += [(ident(5000 + len(self.model) + k), entry(2)) for k in range(fresh)]
        expected = []
        for blob_id, packed in records:
            if blob_id in self.model:
                expected.append((blob_id, ENTRY.pack(*self.model[blob_id]), packed))
            else:
                self.model[blob_id] = ENTRY.unpack(packed)
        assert sorted(self.table.add_many(records)) == sorted(expected)

    @rule(i=st.integers(0, len(POOL) - 1), bits=st.integers(0, 255))
    def set_bits(self, i: int, bits: int) -> None:
        blob_id = POOL[i]
        old = self.table.set_bits(blob_id, bits)
        if blob_id in self.model:
            flags, payload = self.model[blob_id]
            assert old == flags
            self.model[blob_id] = (flags | bits, payload)
        else:
            assert old is None

    @rule(bits=st.integers(0, 255))
    def clear_bits(self, bits: int) -> None:
        self.table.clear_bits(bits)
        self.model = {k: (f & ~bits, p) for k, (f, p) in self.model.items()}

    @rule(flags=st.integers(0, 255))
    def keep_if(self, flags: int) -> None:
        self.table.keep_if(lambda e: e[0] != flags)
        self.model = {k: v for k, v in self.model.items() if v[0] != flags}

    @rule(n=st.integers(0, 40))
    def fill(self, n: int) -> None:  # enough IDs to make the table split
        for k in range(n):
            blob_id = ident(1000 + len(self.model) + k)
            if blob_id not in self.model:
                self.table.add(blob_id, entry(1))
                self.model[blob_id] = (1, b"\0" * 27)

    @invariant()
    def agrees(self) -> None:
        assert len(self.table) == len(self.model)
        for blob_id in POOL:
            assert (blob_id in self.table) is (blob_id in self.model)
            assert self.table.get(blob_id) == self.model.get(blob_id)
        assert dict(self.table.items()) == self.model
        assert sorted(self.table.entries()) == sorted(self.model.values())


TestTableMachine = TableMachine.TestCase
TestTableMachine.settings = MACHINE


# -- Index against a dict model ----------------------------------------------------
PACKS = ["p0", "p1", "p2", "p3"]
Row = tuple[str, int, int, int, int]  # pack, type, offset, length, raw_length


class IndexModel:
    """The index's documented behaviour, on plain dicts: first copy wins, others are kept."""

    def __init__(self) -> None:
        self.entries: dict[bytes, Row] = {}
        self.used: set[bytes] = set()
        self.dups: list[tuple[bytes, Row]] = []
        self.pack_blobs: dict[str, int] = {}

    def add(self, blob_id: bytes, row: Row) -> None:
        if blob_id not in self.entries:
            self.entries[blob_id] = row
        elif self.entries[blob_id] != row:
            self.dups.append((blob_id, row))

    def location(self, row: Row) -> Location:
        return Location(row[0], row[2], row[3], row[4], BlobType(row[1]))

    def usage(self) -> dict[str, PackUsage]:
        stats = {p: PackUsage() for p in self.pack_blobs}
        rows = [(b, r, b in self.used) for b, r in self.entries.items()]
        for _, row, used in rows + [(b, r, False) for b, r in self.dups]:
            u = stats[row[0]]
            u.blobs += 1
            u.bytes += row[3]
            u.type = row[1]
            if used:
                u.used_blobs += 1
                u.used_bytes += row[3]
        return stats

    def remove(self, packs: set[str]) -> None:
        self.entries = {b: r for b, r in self.entries.items() if r[0] not in packs}
        self.used &= set(self.entries)
        dups, self.dups = self.dups, []
        for blob_id, row in dups:
            if row[0] not in packs:
                self.add(blob_id, row)
        for p in packs:
            self.pack_blobs.pop(p, None)


rows_st = st.lists(
    st.tuples(st.integers(0, len(POOL) - 1), st.integers(0, 3), st.integers(1, 3), st.integers(0, 2)),
    max_size=8,
)


def by_offset(blobs: list[PackedBlob]) -> list[tuple[int, bytes, int, int, int]]:
    return sorted((b.offset, b.id, b.length, b.raw_length, int(b.type)) for b in blobs)


class IndexMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.index = Index()
        self.model = IndexModel()

    @rule(p=st.integers(0, 3), rows=rows_st, as_pack=st.booleans())
    def add(self, p: int, rows: list[tuple[int, int, int, int]], as_pack: bool) -> None:
        pack, type_ = PACKS[p], p % 2  # a pack never mixes blob types
        full = [(type_, POOL[i], offset * 100, length * 10, raw) for i, offset, length, raw in rows]
        if as_pack:
            self.index.add_pack(pack, [PackedBlob(BlobType(t), b, o, n, r) for t, b, o, n, r in full])
        else:
            self.index.add_rows(pack, full)
        for t, blob_id, o, n, r in full:
            self.model.add(blob_id, (pack, t, o, n, r))
        self.model.pack_blobs[pack] = self.model.pack_blobs.get(pack, 0) + len(full)

    @rule(n=st.integers(1, 60))
    def fill(self, n: int) -> None:  # enough blobs to make the table split
        start = 10_000 + len(self.model.entries)
        rows = [(1, ident(start + k), k * 50, 50, 0) for k in range(n)]
        self.index.add_rows("p3", rows)
        for t, blob_id, o, length, r in rows:
            self.model.add(blob_id, ("p3", t, o, length, r))
        self.model.pack_blobs["p3"] = self.model.pack_blobs.get("p3", 0) + n

    @rule(i=st.integers(0, len(POOL) - 1))
    def mark_used(self, i: int) -> None:
        blob_id = POOL[i]
        expected = None if blob_id not in self.model.entries else blob_id not in self.model.used
        assert self.index.mark_used(blob_id) is expected
        if blob_id in self.model.entries:
            self.model.used.add(blob_id)

    @rule()
    def clear_used(self) -> None:
        self.index.clear_used()
        self.model.used.clear()

    @rule(packs=st.sets(st.sampled_from([*PACKS, "absent"]), max_size=2))
    def remove_packs(self, packs: set[str]) -> None:
        self.index.remove_packs(packs)
        self.model.remove(packs)

    @rule(packs=st.sets(st.sampled_from([*PACKS, "absent"]), max_size=3))
    def rows_of_packs(self, packs: set[str]) -> None:
        got = self.index.pack_rows(packs)
        expected: dict[str, list[PackedBlob]] = {}
        for blob_id, row in [*self.model.entries.items(), *self.model.dups]:
            if row[0] in packs:
                expected.setdefault(row[0], []).append(PackedBlob(BlobType(row[1]), blob_id, *row[2:]))
        assert {p: by_offset(b) for p, b in got.items()} == {p: by_offset(b) for p, b in expected.items()}
        for blobs in got.values():
            assert [b.offset for b in blobs] == sorted(b.offset for b in blobs)
        used = self.index.used_in(packs)
        assert set(used) == packs
        for pack, found in used.items():
            assert sorted(found, key=lambda x: x[0]) == sorted(
                (b, self.model.location(r)) for b, r in self.model.entries.items()
                if r[0] == pack and b in self.model.used
            )  # fmt: skip

    @invariant()
    def agrees(self) -> None:
        index, model = self.index, self.model
        assert len(index) == len(model.entries)
        assert index.packs() == set(model.pack_blobs)
        for blob_id in POOL:
            row = model.entries.get(blob_id)
            assert (blob_id in index) is (row is not None)
            assert index.lookup(blob_id) == (None if row is None else model.location(row))
            assert index.blob_type(blob_id) == (None if row is None else BlobType(row[1]))
            assert index.is_used(blob_id) is (blob_id in model.used)
        assert dict(index.blobs()) == {b: model.location(r) for b, r in model.entries.items()}
        assert index.usage() == model.usage()


TestIndexMachine = IndexMachine.TestCase
TestIndexMachine.settings = MACHINE


@pytest.mark.parametrize(
    "row",
    [
        (0, ident(1), 1 << 48, 1, 0),
        (0, ident(1), 0, 1 << 48, 0),
        (0, ident(1), 0, 1, 1 << 48),
        (0, ident(1), -1, 1, 0),
        (2, ident(1), 0, 1, 0),
        (-1, ident(1), 0, 1, 0),
    ],
)
def test_index_rejects_out_of_range_rows(row: tuple[int, bytes, int, int, int]) -> None:
    index = Index()
    with pytest.raises(IntegrityError):
        index.add_rows("p", [row])
    assert ident(1) not in index


def test_index_keeps_the_largest_fields() -> None:
    index = Index()
    top = (1 << 48) - 1
    index.add_rows("p", [(1, ident(1), top, top, top)])
    assert index.lookup(ident(1)) == Location("p", top, top, top, BlobType.TREE)
    assert index.mark_used(ident(1)) is True and index.mark_used(ident(1)) is False
    assert index.lookup(ident(1)) == Location("p", top, top, top, BlobType.TREE)
    assert index.usage()["p"] == PackUsage(1, top, 1, top, 1)


def test_index_readding_a_marked_row_is_not_a_duplicate() -> None:
    index = Index()
    row = (0, ident(1), 0, 10, 0)
    index.add_rows("p", [row])
    assert index.mark_used(ident(1)) is True
    index.add_rows("p", [row])  # the same row again (the same index file loaded twice)
    index.add_rows("q", [(0, ident(1), 5, 10, 0)])  # a second copy elsewhere
    assert index.usage() == {"p": PackUsage(1, 10, 1, 10, 0), "q": PackUsage(1, 10, 0, 0, 0)}
    assert [b.offset for b in index.pack_rows({"p", "q"})["p"]] == [0]
    index.remove_packs({"p"})
    assert index.lookup(ident(1)) == Location("q", 5, 10, 0, BlobType.DATA)
    assert index.is_used(ident(1)) is False and len(index) == 1
