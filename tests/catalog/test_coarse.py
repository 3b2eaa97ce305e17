"""The coarse (size magnitude, mtime day) index: its keys, the buckets and days a query's
bounds give, that SQLite computes the same keys, and that size-only, date-only and
extension queries read an index (issue 13: "date, size and type queries use indexes")."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amber.catalog import coarse, store
from amber.catalog.query import FindQuery, SizeBound
from amber.catalog.search import _WANTED_COLUMNS, EXT_NAMES_SQL, version_query

DAY = coarse.NS_PER_DAY
int64 = st.integers(coarse.INT64_MIN, coarse.INT64_MAX)


@pytest.mark.parametrize(("size", "bucket"), [
    (coarse.INT64_MIN, 0), (-5, 0), (0, 0), (1, 11), (9, 19), (10, 21), (99, 29), (100, 31),
    (1023, 41), (2040, 42), (9999, 49), (10**12, 131), (coarse.INT64_MAX, 199),
])  # fmt: skip
def test_size_bucket(size: int, bucket: int) -> None:
    assert coarse.size_bucket(size) == bucket


@pytest.mark.parametrize(("mtime", "day"), [
    (0, 0), (DAY - 1, 0), (DAY, 1), (-1, 0), (-DAY + 1, 0), (-DAY, -1), (-DAY - 1, -1),
    (1_767_225_600 * 10**9, 20454),
])  # fmt: skip
def test_mtime_day_truncates_toward_zero(mtime: int, day: int) -> None:
    assert coarse.mtime_day(mtime) == day


def _keys(first: int, last: int) -> list[int]:
    return [k for k in range(first, last + 1) if k % 10]


@pytest.mark.parametrize(("bounds", "buckets"), [
    ((), [0, *_keys(11, 199)]),
    ((SizeBound("+", 150),), _keys(31, 199)),
    ((SizeBound("+", 99),), _keys(31, 199)),
    ((SizeBound("+", 2040),), _keys(42, 199)),
    ((SizeBound("-", 1024),), [0, *_keys(11, 41)]),
    ((SizeBound("-", 1),), [0]),
    ((SizeBound("=", 0),), [0]),
    ((SizeBound("=", 4096),), [44]),
    ((SizeBound("+", 10), SizeBound("-", 1000)), _keys(21, 39)),
    ((SizeBound("+", 5), SizeBound("-", 3)), []),
    ((SizeBound("+", coarse.INT64_MAX),), []),
    ((SizeBound("=", 2**64),), []),
])  # fmt: skip
def test_size_buckets(bounds: tuple[SizeBound, ...], buckets: list[int]) -> None:
    assert coarse.size_buckets(bounds) == buckets


bound = st.builds(SizeBound, st.sampled_from(["+", "-", "="]), st.integers(0, 2**65) | st.integers(0, 20_000))


@given(size=int64 | st.integers(-10, 20_000), bounds=st.lists(bound, max_size=3))
def test_every_size_a_bound_admits_is_in_its_buckets(size: int, bounds: list[SizeBound]) -> None:
    if all(b.holds(size) for b in bounds):
        assert coarse.size_bucket(size) in coarse.size_buckets(bounds)


@given(mtime=int64, newer=st.none() | int64, older=st.none() | int64)
def test_every_mtime_in_range_is_in_its_days(mtime: int, newer: int | None, older: int | None) -> None:
    first, last = coarse.day_range(newer, older)
    if (newer is None or mtime > newer) and (older is None or mtime < older):
        day = coarse.mtime_day(mtime)
        assert (first is None or day >= first) and (last is None or day <= last)


@given(size=int64, mtime=int64)
def test_sqlite_computes_the_same_keys(size: int, mtime: int) -> None:
    conn = sqlite3.connect(":memory:")
    row = conn.execute(
        f"SELECT {coarse.SIZE_BUCKET_SQL}, {coarse.MTIME_DAY_SQL} FROM (SELECT ? AS size, ? AS mtime)",
        (size, mtime),
    ).fetchone()
    conn.close()
    assert row == (coarse.size_bucket(size), coarse.mtime_day(mtime))


def _plan(conn: sqlite3.Connection, sql: str, params: list[object] | tuple[object, ...]) -> str:
    return " | ".join(str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params))


@pytest.mark.parametrize("query", [
    FindQuery(patterns=("*",), sizes=(SizeBound("+", 150),)),
    FindQuery(patterns=("*",), sizes=(SizeBound("-", 10),)),
    FindQuery(patterns=("*",), sizes=(SizeBound("=", 4096),)),
    FindQuery(patterns=("*",), newer_ns=1_700_000_000 * 10**9),
    FindQuery(patterns=("*",), older_ns=1_700_000_000 * 10**9),
    FindQuery(patterns=("*",), newer_ns=10**18, older_ns=2 * 10**18, sizes=(SizeBound("+", 1),)),
])  # fmt: skip
def test_size_and_date_queries_read_the_coarse_index(tmp_path: Path, query: FindQuery) -> None:
    conn, _ = store.open_catalog("r", tmp_path / "c.sqlite")
    try:
        assert "USING INDEX ver_coarse" in _plan(conn, *version_query(query, by_name=False))
        # with name candidates, rows are read by name (the primary key) instead
        conn.execute(f"CREATE TEMP TABLE wanted {_WANTED_COLUMNS}")
        assert "USING PRIMARY KEY (nid=?)" in _plan(conn, *version_query(query, by_name=True))
    finally:
        conn.close()


def test_extension_and_name_lookups_read_the_name_index(tmp_path: Path) -> None:
    conn, _ = store.open_catalog("r", tmp_path / "c.sqlite")
    try:
        assert "INDEX name_key (ext=?)" in _plan(conn, EXT_NAMES_SQL, ("iso",))
        plan = _plan(conn, store.NAME_ID_SQL, store.name_key(b"a.iso"))
        assert "INDEX name_key (ext=? AND <expr>=?)" in plan
    finally:
        conn.close()
