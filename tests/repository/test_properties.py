"""Property tests for the pure parts of the repository format and the chunker.

Round trips (pack header, blob, tree, snapshot, index), the chunker's invariants,
and the failure modes of encryption and key files.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from amber.engine.chunker import Chunker
from amber.errors import AmberError, IntegrityError, WrongPassword
from amber.repository.blobstore import BlobStore
from amber.repository.crypto import OVERHEAD, KdfParams, MasterKey
from amber.repository.index import (
    Index,
    decode_index,
    encode_index,
    index_file_blobs,
)
from amber.repository.keys import describe_key, unwrap_master_key, wrap_master_key
from amber.repository.model import (
    Node,
    Snapshot,
    Summary,
    Tree,
    decode_snapshot,
    decode_tree,
    encode_snapshot,
    encode_tree,
)
from amber.repository.pack import (
    HEADER_LEN_SIZE,
    BlobType,
    PackedBlob,
    encode_header,
    pack_id,
    parse_pack,
)
from amber.repository.repo import CHUNK_AVG, CHUNK_MAX, CHUNK_MIN

KEY = MasterKey(bytes(range(32)), bytes(range(32, 64)))
OTHER_KEY = MasterKey(bytes(range(100, 132)), bytes(range(32, 64)))
CHEAP_KDF = KdfParams(time_cost=1, memory_kib=8192, parallelism=1)
# deterministic (same examples every run) and free of timing flakiness under load
PROPS = settings(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

INT64 = st.integers(-(2**63), 2**63 - 1)
UINT64 = st.integers(0, 2**64 - 1)
blob_ids = st.binary(min_size=32, max_size=32)
blob_types = st.sampled_from(list(BlobType))


def _store() -> BlobStore:
    # encode_blob/decode_blob never touch the backend
    return BlobStore(None, KEY)  # type: ignore[arg-type]


# -- encryption ----------------------------------------------------------------


@PROPS
@given(st.binary(max_size=4096))
def test_encrypt_decrypt_round_trip(plain: bytes) -> None:
    sealed = KEY.encrypt(plain)
    assert len(sealed) == len(plain) + OVERHEAD
    assert KEY.decrypt(sealed) == plain
    assert KEY.decrypt(memoryview(sealed)) == plain


@PROPS
@given(st.binary(max_size=1024))
def test_wrong_key_fails_to_decrypt(plain: bytes) -> None:
    with pytest.raises(IntegrityError):
        OTHER_KEY.decrypt(KEY.encrypt(plain))


@PROPS
@given(st.binary(max_size=1024), st.data())
def test_modified_ciphertext_is_rejected(plain: bytes, data: st.DataObject) -> None:
    sealed = bytearray(KEY.encrypt(plain))
    pos = data.draw(st.integers(0, len(sealed) - 1), label="pos")
    bit = data.draw(st.integers(0, 7), label="bit")
    sealed[pos] ^= 1 << bit
    with pytest.raises(IntegrityError):
        KEY.decrypt(bytes(sealed))


@PROPS
@given(st.binary(max_size=1024), st.data())
def test_truncated_or_extended_ciphertext_is_rejected(plain: bytes, data: st.DataObject) -> None:
    sealed = KEY.encrypt(plain)
    cut = data.draw(st.integers(0, len(sealed) - 1), label="cut")
    with pytest.raises(IntegrityError):
        KEY.decrypt(sealed[:cut])
    with pytest.raises(IntegrityError):
        KEY.decrypt(sealed + data.draw(st.binary(min_size=1, max_size=8), label="extra"))


def test_nonces_are_fresh() -> None:
    assert KEY.encrypt(b"same") != KEY.encrypt(b"same")


@PROPS
@given(st.binary(max_size=2048))
def test_blob_id_is_keyed(plain: bytes) -> None:
    other = MasterKey(bytes(range(32)), bytes(range(64, 96)))
    assert len(KEY.blob_id(plain)) == 32
    assert KEY.blob_id(plain) == KEY.blob_id(memoryview(plain))
    assert KEY.blob_id(plain) != other.blob_id(plain)


def test_chunker_seed_depends_on_id_key_and_is_positive() -> None:
    seeds = {MasterKey(bytes(32), bytes([i]) * 32).chunker_seed for i in range(16)}
    assert len(seeds) == 16
    assert all(0 < s < 2**63 for s in seeds)


# -- blobs ---------------------------------------------------------------------

compressible = st.builds(lambda unit, n: unit * n, st.binary(min_size=1, max_size=16), st.integers(0, 4000))
incompressible = st.integers(0, 8192).map(lambda n: hashlib.shake_256(str(n).encode()).digest(n))


@PROPS
@given(st.one_of(st.binary(max_size=4096), compressible, incompressible))
@example(b"")
@example(b"a" * 64)  # the largest never-compressed length
@example(b"a" * 65)
@example(bytes(1 << 20))
def test_blob_encode_decode_round_trip(data: bytes) -> None:
    store = _store()
    blob_id = KEY.blob_id(data)
    sealed, raw_length = store.encode_blob(data)
    assert raw_length in (0, len(data))
    if raw_length:
        assert len(data) > 64
        # compressed form saves more than 1/32
        assert len(sealed) - OVERHEAD < len(data) - len(data) // 32
    else:
        assert len(sealed) == len(data) + OVERHEAD
    assert store.decode_blob(blob_id, sealed, raw_length) == data
    assert store.decode_blob(blob_id, memoryview(sealed), raw_length) == data


@PROPS
@given(st.binary(max_size=2048))
def test_blob_encode_of_memoryview(data: bytes) -> None:
    store = _store()
    sealed, raw_length = store.encode_blob(memoryview(data))
    assert store.decode_blob(KEY.blob_id(data), sealed, raw_length) == data


def test_blob_compression_decisions() -> None:
    store = _store()
    _, raw = store.encode_blob(b"x" * 10_000)
    assert raw == 10_000
    noise = hashlib.shake_256(b"noise").digest(10_000)
    sealed, raw = store.encode_blob(noise)
    assert raw == 0 and len(sealed) == 10_000 + OVERHEAD
    assert store.encode_blob(b"")[1] == 0
    no_compression = BlobStore(None, KEY, compression_level=0)  # type: ignore[arg-type]
    sealed, raw = no_compression.encode_blob(b"x" * 10_000)
    assert raw == 0 and len(sealed) == 10_000 + OVERHEAD


@PROPS
@given(st.one_of(st.binary(min_size=1, max_size=2048), compressible.filter(bool)), st.data())
def test_blob_damage_is_detected(data: bytes, draw: st.DataObject) -> None:
    store = _store()
    blob_id = KEY.blob_id(data)
    sealed, raw_length = store.encode_blob(data)
    # wrong ID
    with pytest.raises(IntegrityError):
        store.decode_blob(KEY.blob_id(data + b"!"), sealed, raw_length)
    # flipped bit anywhere
    damaged = bytearray(sealed)
    pos = draw.draw(st.integers(0, len(damaged) - 1), label="pos")
    damaged[pos] ^= 0x01
    with pytest.raises(IntegrityError):
        store.decode_blob(blob_id, bytes(damaged), raw_length)
    # encrypted under another key
    with pytest.raises(IntegrityError):
        store.decode_blob(blob_id, OTHER_KEY.encrypt(data), 0)


def test_blob_with_bad_compression_is_integrity_error() -> None:
    store = _store()
    data = b"not a zstd frame" * 10
    with pytest.raises(IntegrityError):
        store.decode_blob(KEY.blob_id(data), KEY.encrypt(data), len(data))


# -- pack headers ------------------------------------------------------------------

packed_rows = st.lists(
    st.tuples(blob_types, blob_ids, st.integers(0, 300), st.integers(0, 8 << 20)), max_size=40
)


def _layout(rows: list[tuple[BlobType, bytes, int, int]]) -> list[PackedBlob]:
    blobs, offset = [], 0
    for type_, id_, length, raw_length in rows:
        blobs.append(PackedBlob(type_, id_, offset, length, raw_length))
        offset += length
    return blobs


@PROPS
@given(packed_rows, st.binary(max_size=1))
def test_pack_header_round_trip(rows: list[tuple[BlobType, bytes, int, int]], fill: bytes) -> None:
    blobs = _layout(rows)
    body = (fill or b"\0") * sum(b.length for b in blobs)
    data = body + encode_header(blobs, KEY.encrypt)
    assert parse_pack(data, KEY.decrypt) == blobs
    header_len = int.from_bytes(data[-HEADER_LEN_SIZE:], "little")
    assert len(body) + header_len + HEADER_LEN_SIZE == len(data)


@PROPS
@given(packed_rows.filter(bool), st.data())
def test_pack_header_damage_is_detected(
    rows: list[tuple[BlobType, bytes, int, int]], draw: st.DataObject
) -> None:
    blobs = _layout(rows)
    body = b"\0" * sum(b.length for b in blobs)
    data = body + encode_header(blobs, KEY.encrypt)
    with pytest.raises(IntegrityError):
        parse_pack(data, OTHER_KEY.decrypt)
    # one byte more or less in the blob area no longer adds up
    with pytest.raises(IntegrityError):
        parse_pack(b"\0" + data, KEY.decrypt)
    if body:
        with pytest.raises(IntegrityError):
            parse_pack(data[1:], KEY.decrypt)
    # any flipped bit in the header or its length
    pos = draw.draw(st.integers(len(body), len(data) - 1), label="pos")
    damaged = bytearray(data)
    damaged[pos] ^= 0x80
    with pytest.raises(IntegrityError):
        parse_pack(bytes(damaged), KEY.decrypt)
    # any truncation
    cut = draw.draw(st.integers(0, len(data) - 1), label="cut")
    with pytest.raises(IntegrityError):
        parse_pack(data[:cut], KEY.decrypt)


@pytest.mark.parametrize(
    "rows",
    [
        [[2, 10, 0, bytes(32)]],  # unknown type
        [[0, -1, 0, bytes(32)]],  # negative length
        [[0, 10, -5, bytes(32)]],  # negative raw length
        [[0, 10, 0, bytes(31)]],  # short ID
        [[0, 10, 0]],  # short row
        {"not": "a list"},
    ],
)
def test_malformed_pack_header_rows_are_rejected(rows: object) -> None:
    sealed = KEY.encrypt(msgspec.msgpack.encode(rows))
    data = b"\0" * 10 + sealed + len(sealed).to_bytes(4, "little")
    with pytest.raises(IntegrityError):
        parse_pack(data, KEY.decrypt)


def test_pack_id_is_sha256_hex() -> None:
    assert pack_id(b"abc") == hashlib.sha256(b"abc").hexdigest()


# -- trees and snapshots ------------------------------------------------------------

names = st.binary(min_size=1, max_size=64).filter(
    lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b"..")
)
nodes = st.builds(
    Node,
    name=names,
    type=st.sampled_from(["file", "dir", "symlink", "fifo", "chardev", "blockdev"]),
    mode=st.integers(0, 0o7777),
    uid=UINT64,
    gid=UINT64,
    user=st.text(max_size=20),
    group=st.text(max_size=20),
    mtime_ns=INT64,
    atime_ns=INT64,
    ctime_ns=INT64,
    size=UINT64,
    inode=UINT64,
    device=UINT64,
    links=st.integers(0, 2**32),
    rdev=UINT64,
    link_target=st.binary(max_size=300),
    xattrs=st.lists(st.tuples(st.binary(max_size=40), st.binary(max_size=300)), max_size=4),
    content=st.lists(blob_ids, max_size=5),
    sha256=st.one_of(st.just(b""), st.binary(min_size=32, max_size=32)),
    subtree=st.one_of(st.just(b""), blob_ids),
    damaged=st.booleans(),
)
trees = st.lists(nodes, max_size=8).map(
    lambda ns: Tree(nodes=sorted({n.name: n for n in ns}.values(), key=lambda n: n.name))
)


@PROPS
@given(trees)
def test_tree_round_trip(tree: Tree) -> None:
    data = encode_tree(tree)
    back = decode_tree(data)
    assert back == tree
    assert encode_tree(back) == data  # deterministic: same tree, same ID


def test_empty_tree_and_default_node_encode_minimally() -> None:
    assert encode_tree(Tree()) == msgspec.msgpack.encode({})
    node = Node(name=b"x", type="file")
    assert msgspec.msgpack.decode(encode_tree(Tree(nodes=[node]))) == {
        "nodes": [{"name": b"x", "type": "file"}]
    }


def test_tree_decoder_ignores_unknown_fields() -> None:
    raw = msgspec.msgpack.encode(
        {"nodes": [{"name": b"\xff\xfe", "type": "file", "future": [1, 2]}], "later": 1}
    )
    assert decode_tree(raw) == Tree(nodes=[Node(name=b"\xff\xfe", type="file")])


@pytest.mark.parametrize(
    "raw",
    [b"", b"\xc1", msgspec.msgpack.encode([1, 2]), msgspec.msgpack.encode({"nodes": [{}]})],
)
def test_malformed_tree_is_integrity_error(raw: bytes) -> None:
    with pytest.raises(IntegrityError):
        decode_tree(raw)


summaries = st.builds(
    Summary,
    files_new=st.integers(0, 2**40),
    files_changed=st.integers(0, 2**40),
    files_unmodified=st.integers(0, 2**40),
    dirs=st.integers(0, 2**40),
    total_files=st.integers(0, 2**40),
    total_bytes=UINT64,
    data_blobs_added=st.integers(0, 2**40),
    tree_blobs_added=st.integers(0, 2**40),
    data_added=UINT64,
    data_added_stored=UINT64,
    duration_s=st.floats(min_value=0, allow_nan=False, allow_infinity=False),
)
snapshots = st.builds(
    Snapshot,
    time=st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat(timespec="microseconds")),
    tree=blob_ids,
    paths=st.lists(st.text(min_size=1, max_size=40), max_size=4),
    hostname=st.text(max_size=30),
    username=st.text(max_size=30),
    uid=UINT64,
    gid=UINT64,
    tags=st.lists(st.text(max_size=10), max_size=4),
    parent=st.text(alphabet="0123456789abcdef", max_size=64),
    excludes=st.lists(st.text(max_size=20), max_size=3),
    program_version=st.text(max_size=20),
    partial=st.booleans(),
    skipped=st.lists(st.text(max_size=40), max_size=3),
    changed_during_read=st.lists(st.text(max_size=40), max_size=3),
    summary=summaries,
)


@PROPS
@given(snapshots)
def test_snapshot_round_trip(snap: Snapshot) -> None:
    data = encode_snapshot(snap)
    back = decode_snapshot(data)
    assert back == snap
    assert encode_snapshot(back) == data
    assert back.datetime.tzinfo is not None


@pytest.mark.parametrize(
    "raw",
    [b"", msgspec.msgpack.encode({"tree": bytes(32)}), msgspec.msgpack.encode([1])],
)
def test_malformed_snapshot_is_integrity_error(raw: bytes) -> None:
    with pytest.raises(IntegrityError):
        decode_snapshot(raw)


# -- index ---------------------------------------------------------------------

pack_names = st.binary(min_size=32, max_size=32).map(bytes.hex)
index_packs = st.dictionaries(
    pack_names,
    st.lists(
        st.builds(
            PackedBlob,
            type=blob_types,
            id=blob_ids,
            offset=st.integers(0, 2**28),  # within the limits of design §3
            length=st.integers(OVERHEAD, 8 << 20),
            raw_length=st.integers(0, 8 << 20),
        ),
        max_size=10,
    ),
    max_size=6,
)


@PROPS
@given(index_packs, st.lists(pack_names, max_size=3))
def test_index_file_round_trip(packs: dict[str, list[PackedBlob]], supersedes: list[str]) -> None:
    doc = decode_index(encode_index(packs, supersedes))
    assert dict(index_file_blobs(doc)) == packs
    assert doc.supersedes == supersedes
    # and through encryption, as stored
    sealed = KEY.encrypt(encode_index(packs, supersedes))
    assert dict(index_file_blobs(decode_index(KEY.decrypt(sealed)))) == packs


def test_index_file_always_has_both_keys() -> None:
    plain = msgspec.msgpack.decode(encode_index({}))
    assert plain == {"packs": [], "supersedes": []}


@PROPS
@given(index_packs)
def test_in_memory_index_first_entry_wins(packs: dict[str, list[PackedBlob]]) -> None:
    index = Index()
    first: dict[bytes, tuple[str, PackedBlob]] = {}
    for pack, blobs in packs.items():
        index.add_pack(pack, blobs)
        for b in blobs:
            first.setdefault(b.id, (pack, b))
    assert len(index) == len(first)
    for blob_id, (pack, b) in first.items():
        loc = index.lookup(blob_id)
        assert loc is not None
        assert (loc.pack, loc.offset, loc.length, loc.raw_length, loc.type) == (
            pack, b.offset, b.length, b.raw_length, b.type,
        )  # fmt: skip
        assert loc.plain_length == (b.raw_length or b.length - OVERHEAD)
        assert blob_id in index
        assert index.blob_type(blob_id) is b.type
    assert index.lookup(b"\0" * 31) is None
    assert {p for p, _ in first.values()} <= index.packs()
    assert dict(index.blobs()).keys() == first.keys()


@PROPS
@given(st.integers(0, 2**64), st.integers(0, 2**64), st.integers(0, 2**64), blob_types)
@example(2**32, 28, 0, BlobType.DATA)
@example(0, 2**32 + 28, 2**32, BlobType.TREE)
def test_in_memory_index_is_exact_or_refuses(
    offset: int, length: int, raw_length: int, type_: BlobType
) -> None:
    """However entries are stored, a location never comes back silently altered."""
    index = Index()
    try:
        index.add_pack("ab" * 32, [PackedBlob(type_, bytes(32), offset, length, raw_length)])
    except AmberError:
        assert bytes(32) not in index
        return
    loc = index.lookup(bytes(32))
    assert loc is not None
    assert (loc.pack, loc.offset, loc.length, loc.raw_length, loc.type) == (
        "ab" * 32, offset, length, raw_length, type_,
    )  # fmt: skip


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        msgspec.msgpack.encode({"supersedes": []}),
        msgspec.msgpack.encode({"packs": [["p", [[0, b"x", 1, 2]]]]}),
        msgspec.msgpack.encode({"packs": "nope"}),
    ],
)
def test_malformed_index_is_integrity_error(raw: bytes) -> None:
    with pytest.raises(IntegrityError):
        decode_index(raw)


@pytest.mark.parametrize(
    "row",
    [
        [7, bytes(32), 0, 40, 0],  # unknown blob type
        [0, bytes(5), 0, 40, 0],  # ID is not 32 bytes
        [0, bytes(32), -1, 40, 0],  # negative offset
        [0, bytes(32), 0, -40, 0],  # negative length
        [0, bytes(32), 0, 40, -1],  # negative raw length
    ],
)
def test_index_rows_are_validated(row: list[object]) -> None:
    raw = msgspec.msgpack.encode({"packs": [["ab" * 32, [row]], ], "supersedes": []})  # fmt: skip
    with pytest.raises(IntegrityError):
        list(index_file_blobs(decode_index(raw)))


# -- chunker ---------------------------------------------------------------------


@st.composite
def chunker_params(draw: st.DrawFn) -> tuple[int, int, int, int]:
    """Small FastCDC parameters within pyfastcdc's limits.

    min is even: pyfastcdc can cut one byte short of an odd minimum.
    """
    minimum = draw(st.integers(32, 1024)) * 2  # [64, 2048]
    avg = draw(st.integers(max(256, minimum), 4096))
    maximum = draw(st.integers(max(1024, avg), 8192))
    seed = draw(st.integers(1, 2**63 - 1))
    return avg, minimum, maximum, seed


payloads = st.one_of(
    st.binary(max_size=20_000),
    st.integers(0, 60_000).map(lambda n: hashlib.shake_256(str(n).encode()).digest(n)),
    st.builds(lambda b, n: b * n, st.binary(min_size=1, max_size=4), st.integers(0, 10_000)),
)


def _check_chunks(params: tuple[int, int, int, int], data: bytes) -> None:
    avg, minimum, maximum, seed = params
    chunker = Chunker(avg, minimum, maximum, seed)
    chunks = [bytes(c) for c in chunker.chunks(data)]
    assert b"".join(chunks) == data
    assert all(chunks), "no empty chunks"
    for c in chunks[:-1]:
        assert minimum <= len(c) <= maximum
    if chunks:
        assert 1 <= len(chunks[-1]) <= maximum
    # deterministic, also with a fresh chunker
    assert [bytes(c) for c in chunker.chunks(data)] == chunks
    assert [bytes(c) for c in Chunker(avg, minimum, maximum, seed).chunks(data)] == chunks
    # the stream path gives the same chunks and the SHA-256 of everything
    stream, digest = Chunker(avg, minimum, maximum, seed).stream_chunks(io.BytesIO(data))
    streamed = [bytes(c) for c in stream]
    assert streamed == chunks
    assert digest.digest() == hashlib.sha256(data).digest()
    assert digest.size == len(data)


@settings(PROPS, max_examples=150)
@given(chunker_params(), payloads)
def test_chunker_properties_small_params(params: tuple[int, int, int, int], data: bytes) -> None:
    _check_chunks(params, data)


def _det(n: int, tag: bytes) -> bytes:
    return hashlib.shake_256(tag).digest(n) if n < 65536 else _long(n, tag)


def _long(n: int, tag: bytes) -> bytes:
    import blake3

    return blake3.blake3(tag).digest(length=n)


REAL = (CHUNK_AVG, CHUNK_MIN, CHUNK_MAX)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(_det(1000, b"tiny"), id="tiny"),
        pytest.param(_det(CHUNK_MIN, b"exactly-min"), id="exactly-min"),
        pytest.param(_det(24 << 20, b"random"), id="random-24MiB"),
        pytest.param(bytes(20 << 20), id="zeros-20MiB"),
        pytest.param(
            _det(3 << 20, b"a") + bytes(9 << 20) + (b"amber " * (1 << 20)) + _det(5 << 20, b"b"),
            id="mixed",
        ),
    ],
)
def test_chunker_real_params(data: bytes) -> None:
    _check_chunks((*REAL, MasterKey(bytes(32), bytes(32)).chunker_seed), data)


def test_chunker_real_params_mean_and_seed_dependence() -> None:
    data = _long(48 << 20, b"mean")
    a = [len(c) for c in Chunker(*REAL, 1).chunks(data)]
    b = [len(c) for c in Chunker(*REAL, 2).chunks(data)]
    assert a != b, "boundaries must depend on the seed"
    mean = sum(a) / len(a)
    assert CHUNK_MIN < mean < 3 * CHUNK_AVG


def test_chunker_stream_with_short_reads() -> None:
    """A source that returns a few bytes per read still chunks like the buffer."""

    class Trickle(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._data = memoryview(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
            n = min(len(buf), 777, len(self._data))
            buf[:n] = self._data[:n]
            self._data = self._data[n:]
            return n

    data = _det(300_000, b"trickle")
    chunker = Chunker(1024, 256, 4096, 42)
    stream, digest = chunker.stream_chunks(Trickle(data))
    assert [bytes(c) for c in stream] == [bytes(c) for c in chunker.chunks(data)]
    assert digest.digest() == hashlib.sha256(data).digest()


# -- key files -------------------------------------------------------------------


@pytest.fixture(scope="module")
def key_file() -> tuple[str, bytes]:
    return wrap_master_key(KEY, b"right password", CHEAP_KDF)


def test_key_file_unwraps_with_right_password(key_file: tuple[str, bytes]) -> None:
    name, raw = key_file
    assert name == hashlib.sha256(raw).hexdigest()
    key = unwrap_master_key(raw, b"right password")
    assert (key.encrypt_key, key.id_key) == (KEY.encrypt_key, KEY.id_key)
    assert key.chunker_seed == KEY.chunker_seed
    doc = json.loads(raw)
    assert doc["kdf"] == "argon2id"
    assert doc["kdf_params"] == {"time_cost": 1, "memory_kib": 8192, "parallelism": 1}
    assert len(base64.b64decode(doc["salt"])) == 16
    assert describe_key(name, raw).id == name


@pytest.mark.parametrize("password", [b"wrong password", b"", b"right password ", b"Right password"])
def test_key_file_wrong_password(key_file: tuple[str, bytes], password: bytes) -> None:
    with pytest.raises(WrongPassword):
        unwrap_master_key(key_file[1], password)


def test_key_files_differ_per_wrap() -> None:
    a = wrap_master_key(KEY, b"pw", CHEAP_KDF)
    b = wrap_master_key(KEY, b"pw", CHEAP_KDF)
    assert a[0] != b[0]  # fresh salt and nonce


def _edit(raw: bytes, **changes: object) -> bytes:
    doc = json.loads(raw)
    for k, v in changes.items():
        if v is None:
            doc.pop(k)
        else:
            doc[k] = v
    return json.dumps(doc).encode()


def test_key_file_tampered_data_is_wrong_password(key_file: tuple[str, bytes]) -> None:
    doc = json.loads(key_file[1])
    data = bytearray(base64.b64decode(doc["data"]))
    data[-1] ^= 1
    with pytest.raises(WrongPassword):
        unwrap_master_key(_edit(key_file[1], data=base64.b64encode(data).decode()), b"right password")
    other_salt = base64.b64encode(os.urandom(16)).decode()
    with pytest.raises(WrongPassword):
        unwrap_master_key(_edit(key_file[1], salt=other_salt), b"right password")
    changed_params = {"time_cost": 2, "memory_kib": 8192, "parallelism": 1}
    with pytest.raises(WrongPassword):
        unwrap_master_key(_edit(key_file[1], kdf_params=changed_params), b"right password")


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda raw: b"not json", id="not-json"),
        pytest.param(lambda raw: b"[1, 2]", id="not-an-object"),
        pytest.param(lambda raw: _edit(raw, kdf="scrypt"), id="other-kdf"),
        pytest.param(lambda raw: _edit(raw, salt=None), id="no-salt"),
        pytest.param(lambda raw: _edit(raw, data=None), id="no-data"),
        pytest.param(lambda raw: _edit(raw, kdf_params=None), id="no-params"),
        pytest.param(lambda raw: _edit(raw, kdf_params=[1, 2, 3]), id="params-list"),
        pytest.param(lambda raw: _edit(raw, kdf_params={"bogus": 1}), id="params-unknown"),
        pytest.param(
            lambda raw: _edit(raw, kdf_params={"time_cost": 1, "memory_kib": 0, "parallelism": 1}),
            id="params-too-small",
        ),
        pytest.param(
            lambda raw: _edit(raw, kdf_params={"time_cost": "1", "memory_kib": 8192, "parallelism": 1}),
            id="params-wrong-type",
        ),
        pytest.param(lambda raw: _edit(raw, data="!!!not base64"), id="data-not-base64"),
    ],
)
def test_malformed_key_file_is_integrity_error(key_file: tuple[str, bytes], edit: object) -> None:
    raw = edit(key_file[1])  # type: ignore[operator]
    with pytest.raises(IntegrityError):
        unwrap_master_key(raw, b"right password")
