"""The pure checks behind the size limits (design §3 "Size limits", §4, §6, §7): table-driven."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from amber.errors import IntegrityError, ObjectTooLarge
from amber.repository.codec import BlobCodec
from amber.repository.crypto import OVERHEAD, KdfParams, MasterKey
from amber.repository.index import Location, decode_index, encode_index
from amber.repository.keys import kdf_problem
from amber.repository.limits import MAX_PACK_BYTES, MAX_PACK_HEADER, MAX_TREE_BYTES, data_blob_limit
from amber.repository.model import Snapshot, format_time
from amber.repository.pack import BlobType, PackedBlob, decode_header, encode_header, header_length
from amber.repository.repo import Repository
from amber.repository.sealing import Sealer
from amber.storage.base import FileType, Handle
from amber.storage.layout import bounded_length, format_size

MIB = 1 << 20
KEY = MasterKey.generate()
DATA_MAX = data_blob_limit(8 * MIB)
ID = bytes(32)


@pytest.mark.parametrize(
    ("size", "offset", "length", "limit", "expected"),
    [
        (100, 0, None, None, 100),
        (100, 0, None, 100, 100),
        (100, 30, None, 70, 70),
        (100, 0, 10, 5, "too large"),  # the range asked for is over the limit
        (100, 95, 10, 5, 5),  # but only what the object holds counts
        (100, 0, 100 << 40, None, 100),  # a huge range is cut to the object
        (100, 200, None, None, 0),
        (100, 200, 10, 0, 0),
        (6 << 30, 0, None, 64 * MIB, "too large"),
    ],
)
def test_bounded_length(
    size: int, offset: int, length: int | None, limit: int | None, expected: object
) -> None:
    handle = Handle(FileType.SNAPSHOT, "ab" * 32)
    if expected == "too large":
        with pytest.raises(ObjectTooLarge, match=r"^snapshots/abababababababab "):
            bounded_length(handle, size, offset, length, limit)
    else:
        assert bounded_length(handle, size, offset, length, limit) == expected


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 bytes"),
        (1023, "1023 bytes"),
        (64 << 10, "64 KiB"),
        (3 * MIB // 2, "1.5 MiB"),
        (6 << 30, "6 GiB"),
        (100 << 40, "100 TiB"),
    ],
)
def test_format_size(n: int, text: str) -> None:
    assert format_size(n) == text


@pytest.mark.parametrize(
    ("t", "m", "p", "problem"),
    [
        (4, 32 * 1024, 2, None),  # the default
        (1, 8192, 1, None),  # the test suite's
        (16, 256 * 1024, 16, None),  # every bound at once, still allowed
        (4, 1 << 20, 1, None),  # 1 GiB x 4 passes: the largest work
        (0, 8192, 1, "positive whole numbers"),
        (1, -5, 1, "positive whole numbers"),
        (17, 8192, 1, "time cost 17 is over 16"),
        (2**31, 8192, 1, "time cost"),
        (1, (1 << 20) + 1, 1, "memory"),
        (1, 2**40, 1, "memory"),
        (1, 8192, 17, "parallelism 17 is over 16"),
        (5, 1 << 20, 1, r"time cost x memory \(5 x 1 GiB\) is over 4 GiB"),
    ],
)
def test_kdf_bounds(t: int, m: int, p: int, problem: str | None) -> None:
    found = kdf_problem(KdfParams(time_cost=t, memory_kib=m, parallelism=p))
    if problem is None:
        assert found is None
    else:
        assert found is not None and re.search(problem, found), found


@pytest.mark.parametrize(
    ("size", "claim", "error"),
    [
        (1000, 996, None),
        (1000, 997, "exceeds the pack's size"),
        (4 << 30, 3 << 30, "is over the"),
        (4 << 30, MAX_PACK_HEADER, None),
        (4 << 30, MAX_PACK_HEADER + 1, "is over the"),
    ],
)
def test_header_length_checks_the_real_size_and_the_limit(size: int, claim: int, error: str | None) -> None:
    trailer = claim.to_bytes(4, "little")
    if error is None:
        assert header_length(size, trailer) == claim
    else:
        with pytest.raises(IntegrityError, match=error):
            header_length(size, trailer)


def _row(type_: BlobType, offset: int, length: int, raw: int) -> bytes:
    return encode_index({"ab" * 32: [PackedBlob(type_, ID, offset, length, raw)]})


@pytest.mark.parametrize(
    ("type_", "offset", "length", "raw", "ok"),
    [
        (BlobType.DATA, 0, DATA_MAX + OVERHEAD, DATA_MAX, True),
        (BlobType.DATA, 0, DATA_MAX + OVERHEAD + 1, 0, False),
        (BlobType.DATA, 0, 100, DATA_MAX + 1, False),
        (BlobType.DATA, 0, 100 << 40, 0, False),
        (BlobType.TREE, 0, MAX_TREE_BYTES + OVERHEAD, MAX_TREE_BYTES, True),
        (BlobType.TREE, 0, 100, MAX_TREE_BYTES + 1, False),
        (BlobType.DATA, MAX_PACK_BYTES - 100, 100, 0, True),
        (BlobType.DATA, MAX_PACK_BYTES - 100, 101, 0, False),
    ],
)
def test_index_rows_over_the_blob_limits_are_refused(
    type_: BlobType, offset: int, length: int, raw: int, ok: bool
) -> None:
    if ok:
        assert decode_index(_row(type_, offset, length, raw)).packs
    else:
        with pytest.raises(ObjectTooLarge, match="over the limits for a"):
            decode_index(_row(type_, offset, length, raw))


@pytest.mark.parametrize(
    ("type_", "length", "raw", "ok"),
    [
        (BlobType.DATA, DATA_MAX + OVERHEAD, 0, True),
        (BlobType.DATA, DATA_MAX + OVERHEAD + 1, 0, False),
        (BlobType.DATA, 1000, DATA_MAX + 1, False),
        (BlobType.TREE, 1000, DATA_MAX + 1, True),  # trees have their own, larger limit
        (BlobType.TREE, 1000, MAX_TREE_BYTES + 1, False),
    ],
)
def test_the_codec_refuses_lengths_over_the_type_limit(
    type_: BlobType, length: int, raw: int, ok: bool
) -> None:
    codec = BlobCodec(Sealer(KEY), max_data=DATA_MAX)
    loc = Location("ab" * 32, 0, length, raw, type_)
    if ok:
        codec.check_location(ID, loc)
    else:
        with pytest.raises(ObjectTooLarge, match=f"{type_.name.lower()} blob 0000000000000000"):
            codec.check_location(ID, loc)


def test_a_snapshot_over_the_limit_is_never_written(repo: Repository) -> None:
    huge = Snapshot(
        format_time(dt.datetime.now(dt.UTC)), ID, ["/"], "host", skipped=["/x" * 500] * 70_000
    )  # 70 MB of skipped paths
    with pytest.raises(ObjectTooLarge, match="over the 64 MiB limit"):
        repo.save_snapshot(huge)
    assert repo.snapshot_names() == []


@pytest.mark.parametrize(
    ("type_", "length", "raw", "ok"),
    [
        (BlobType.DATA, 1000, DATA_MAX, True),
        (BlobType.DATA, 1000, DATA_MAX + 1, False),
        (BlobType.TREE, 1000, MAX_TREE_BYTES, True),
        (BlobType.TREE, 1000, MAX_TREE_BYTES + 1, False),
    ],
)
def test_pack_header_rows_over_the_blob_limits_are_refused(
    type_: BlobType, length: int, raw: int, ok: bool
) -> None:
    """``repair index`` rebuilds rows from pack headers: none may be one index loading refuses."""
    trailer = encode_header([PackedBlob(type_, ID, 0, length, raw)], KEY.encrypt)
    sealed = trailer[:-4]
    size = length + len(trailer)
    if ok:
        assert decode_header(sealed, size, KEY.decrypt, DATA_MAX)[0].raw_length == raw
    else:
        with pytest.raises(ObjectTooLarge, match="over the limits for its type"):
            decode_header(sealed, size, KEY.decrypt, DATA_MAX)


def test_an_audit_segment_over_the_limit_is_saved_as_several(repo: Repository) -> None:
    from amber.repository.audit_store import AuditSegment, load_segments, save_segment

    records = [bytes([i]) * MIB for i in range(70)]  # 70 MiB of records
    save_segment(repo, AuditSegment("log", "host", 5, records))
    segments = sorted(load_segments(repo), key=lambda s: s.first_seq)
    assert len(segments) >= 2
    assert [r for s in segments for r in s.records] == records
    seen = 0
    for segment in segments:  # consecutive: each starts where the one before ended
        assert segment.first_seq == 5 + seen
        seen += len(segment.records)
