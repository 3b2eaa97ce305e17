"""WAL records read back are bounded before anything is read or allocated for them."""

from __future__ import annotations

import pytest

from amber.errors import IntegrityError
from amber.repository.limits import MAX_CHUNK_MAX
from amber.repository.walrecord import BlobRef, WalRecord, decode_record, encode_record

_PACK = "ab" * 32


def _record(length: int = 1000, raw_length: int = 4000, size: int = 4000) -> WalRecord:
    return WalRecord(size, b"\x01" * 32, (BlobRef(b"\x02" * 32, _PACK, 12, length, raw_length),))


def test_a_record_round_trips() -> None:
    record = _record()
    assert decode_record("c.000000010000000000000001", encode_record(record), 16 << 20) == record


@pytest.mark.parametrize(
    ("record", "max_size", "why"),
    [
        (_record(length=MAX_CHUNK_MAX + (1 << 20)), 1 << 30, "larger than any chunk"),
        (_record(raw_length=MAX_CHUNK_MAX + 1), 1 << 30, "larger than any chunk"),
        (_record(size=(16 << 20) + 1), 16 << 20, "malformed"),
    ],
)
def test_a_record_claiming_too_much_is_refused(record: WalRecord, max_size: int, why: str) -> None:
    with pytest.raises(IntegrityError, match=why):
        decode_record("c.000000010000000000000001", encode_record(record), max_size)


def test_a_record_whose_count_disagrees_with_its_length_is_refused() -> None:
    plain = encode_record(_record())
    with pytest.raises(IntegrityError, match="malformed"):
        decode_record("c.000000010000000000000001", plain[:-1], 16 << 20)
