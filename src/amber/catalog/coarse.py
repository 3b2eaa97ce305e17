"""The catalog's one index on version attributes: coarse keys for size and mtime. Pure, no I/O.

``ver_coarse`` indexes each version by (its size's decimal magnitude, its mtime's day):
one small entry serves both ``--size`` and ``--newer``/``--older`` (design §24). A query
turns its bounds into the buckets and days that can hold a match (a superset: both keys
are monotonic in what they summarise) and compares the exact values afterwards.
The SQL expressions below are the index's own; SQLite only uses an expression index
when a query repeats its expression exactly, so both come from here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
NS_PER_DAY = 86_400 * 10**9
# A positive size's decimal digit count and first digit, as 10 * digits + first digit
# (2,040 -> 42: sizes 2,000-2,999; one byte in the index up to 10^12), 0 for 0 (and for a
# negative size a crafted tree may hold).
SIZE_BUCKET_SQL = "(CASE WHEN size > 0 THEN length(size) * 10 + substr(size, 1, 1) ELSE 0 END)"
# Whole days since 1970; SQLite's integer division truncates toward zero, as mtime_day does.
MTIME_DAY_SQL = f"(mtime / {NS_PER_DAY})"
INDEX_SQL = f"CREATE INDEX ver_coarse ON ver({SIZE_BUCKET_SQL}, {MTIME_DAY_SQL})"


class Bound(Protocol):
    """A size bound as `find --size` gives it: op ``+`` (larger), ``-`` (smaller) or ``=``."""

    @property
    def op(self) -> str: ...

    @property
    def value(self) -> int: ...


def size_bucket(size: int) -> int:
    """The index's size key, as SIZE_BUCKET_SQL computes it."""
    if size <= 0:
        return 0
    text = str(size)
    return 10 * len(text) + int(text[0])


def mtime_day(mtime_ns: int) -> int:
    """The index's mtime key, as MTIME_DAY_SQL computes it (truncated toward zero)."""
    days = abs(mtime_ns) // NS_PER_DAY
    return days if mtime_ns >= 0 else -days


def size_buckets(bounds: Iterable[Bound]) -> list[int]:
    """Every bucket holding a size (a SQLite integer) that meets all ``bounds``; [] if none can."""
    low, high = INT64_MIN, INT64_MAX
    for bound in bounds:
        if bound.op == "+":
            low = max(low, bound.value + 1)
        elif bound.op == "-":
            high = min(high, bound.value - 1)
        else:
            low, high = max(low, bound.value), min(high, bound.value)
    if low > high:
        return []
    first, last = size_bucket(low), size_bucket(high)
    # keys are 0 or 10 * digits + first digit: none of 1-10, none ending in 0
    return [key for key in range(first, last + 1) if key == 0 or (key > 10 and key % 10)]


ALL_BUCKETS = size_buckets(())


def day_range(newer_ns: int | None, older_ns: int | None) -> tuple[int | None, int | None]:
    """The days an mtime strictly after ``newer_ns`` and strictly before ``older_ns`` lies in
    (None: unbounded on that side)."""
    first = None if newer_ns is None else mtime_day(newer_ns + 1)
    last = None if older_ns is None else mtime_day(older_ns - 1)
    return first, last


def coarse_filter(
    bounds: Iterable[Bound], newer_ns: int | None, older_ns: int | None
) -> tuple[list[str], list[int]]:
    """WHERE terms (and their parameters) that let SQLite read ``ver_coarse`` for these
    bounds; none when there are no bounds. The terms only narrow: the exact comparison
    must follow."""
    bounds = list(bounds)
    if not bounds and newer_ns is None and older_ns is None:
        return [], []
    buckets = size_buckets(bounds)
    terms = [f"{SIZE_BUCKET_SQL} IN ({', '.join('?' * len(buckets))})"]
    params = list(buckets)
    first, last = day_range(newer_ns, older_ns)
    if first is not None:
        terms.append(f"{MTIME_DAY_SQL} >= ?")
        params.append(min(max(first, INT64_MIN), INT64_MAX))
    if last is not None:
        terms.append(f"{MTIME_DAY_SQL} <= ?")
        params.append(min(max(last, INT64_MIN), INT64_MAX))
    return terms, params
