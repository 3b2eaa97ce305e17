"""WAL file names and positions (pure): table-driven and property tests."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amber.errors import UsageError
from amber.services import walnames as wn


@pytest.mark.parametrize(
    ("file", "kind", "timeline", "position"),
    [
        ("000000010000000000000003", "segment", 1, "0000000000000003"),
        ("0000000A00000002000000FF", "segment", 10, "00000002000000FF"),
        ("000000020000000000000005.partial", "partial", 2, "0000000000000005"),
        ("000000010000000000000002.00000028.backup", "backup", 1, "0000000000000002"),
        ("00000002.history", "history", 2, ""),
    ],
)
def test_parse(file: str, kind: str, timeline: int, position: str) -> None:
    assert wn.parse(file) == wn.WalName(file, kind, timeline, position)


@pytest.mark.parametrize("bad", ["", "00000001000000000000003", "000000010000000000000003x",
                                 "0000000100000000000000g3", "00000002.History", "x.history",
                                 "000000010000000000000003.backup",
                                 "../00000002.history", "000000010000000000000003/"])  # fmt: skip
def test_other_names_are_refused(bad: str) -> None:
    with pytest.raises(UsageError):
        wn.parse(bad)


@pytest.mark.parametrize(
    ("lsn", "size", "segment"),
    [
        ("0/3000028", 16 << 20, "000000010000000000000003"),
        ("0/2FFFFFF", 16 << 20, "000000010000000000000002"),
        ("1/0", 16 << 20, "000000010000000100000000"),
        ("16/B374D848", 16 << 20, "0000000100000016000000B3"),
        ("0/3000028", 1 << 30, "000000010000000000000000"),
        ("0/C0000000", 1 << 30, "000000010000000000000003"),
    ],
)
def test_segment_name(lsn: str, size: int, segment: str) -> None:
    assert wn.segment_name(1, wn.parse_lsn(lsn), size) == segment


@given(st.integers(0, (1 << 48) - 1), st.sampled_from([1 << 20, 16 << 20, 64 << 20, 1 << 30]))
def test_the_next_position_is_the_segment_after(lsn: int, size: int) -> None:
    here = wn.segment_position(lsn, size)
    after = wn.segment_position((lsn // size + 1) * size, size)
    assert wn.next_position(here, size) == after
    assert here < after  # positions order like LSNs
    assert wn.parse_lsn(wn.format_lsn(lsn)) == lsn


def test_expirable_keeps_history_and_everything_from_the_start() -> None:
    names = [wn.parse(f) for f in ("000000010000000000000001", "000000010000000000000002.00000028.backup",
                                   "000000010000000000000003", "000000020000000000000002.partial",
                                   "00000002.history", "000000020000000000000004")]  # fmt: skip
    gone = [n.file for n in wn.expirable(names, "0000000000000003")]
    assert gone == ["000000010000000000000001", "000000010000000000000002.00000028.backup",
                    "000000020000000000000002.partial"]  # fmt: skip


def test_missing_positions_span_timelines() -> None:
    names = [wn.parse(f) for f in ("000000010000000000000002", "000000010000000000000003",
                                   "000000020000000000000004", "000000020000000000000007")]  # fmt: skip
    assert wn.missing_positions(names, "0000000000000002") == ["0000000000000005", "0000000000000006"]
    assert wn.missing_positions([], "0000000000000002") == []


@pytest.mark.parametrize("cluster", ["", "a.b", "a/b", "x" * 65, "-"[:0]])
def test_bad_cluster_names(cluster: str) -> None:
    with pytest.raises(UsageError):
        wn.check_cluster(cluster)


def test_object_names_round_trip() -> None:
    name = wn.object_name("db-1", "00000003.history")
    assert name == "db-1.00000003.history"
    assert wn.split_object_name(name) == ("db-1", wn.parse("00000003.history"))
    assert wn.split_object_name("stray-file") is None
