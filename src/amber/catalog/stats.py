"""What a snapshot holds, grouped by file type, size, age or directory. Pure, no I/O.

The catalog (SQL) and the tree walk both feed these rules, so their figures agree.
Buckets are tables: the SQL ``CASE`` expressions are generated from the same tables.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from amber.catalog.versions import extension

BY = ("type", "size", "age", "dir")
NO_EXTENSION = "(none)"
_KIB, _DAY = 1024, 86_400 * 10**9
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

# (exclusive upper bound, label); the last bound is None (no limit)
SIZE_BUCKETS: tuple[tuple[int | None, str], ...] = (
    (1, "0 B"),
    (4 * _KIB, "< 4 KiB"),
    (64 * _KIB, "4-64 KiB"),
    (_KIB**2, "64 KiB-1 MiB"),
    (16 * _KIB**2, "1-16 MiB"),
    (256 * _KIB**2, "16-256 MiB"),
    (4 * _KIB**3, "256 MiB-4 GiB"),
    (None, ">= 4 GiB"),
)
# age = snapshot time - modification time
AGE_BUCKETS: tuple[tuple[int | None, str], ...] = (
    (0, "newer than the snapshot"),
    (_DAY, "< 1 day"),
    (7 * _DAY, "1-7 days"),
    (30 * _DAY, "7-30 days"),
    (365 * _DAY, "30-365 days"),
    (3 * 365 * _DAY, "1-3 years"),
    (None, "> 3 years"),
)


def bucket(value: int, buckets: Sequence[tuple[int | None, str]]) -> int:
    for i, (bound, _) in enumerate(buckets):
        if bound is None or value < bound:
            return i
    raise AssertionError("the last bucket has no bound")


def bucket_sql(expression: str, buckets: Sequence[tuple[int | None, str]]) -> str:
    """The same rule as :func:`bucket`, as an SQL expression giving the bucket's index."""
    cases = " ".join(
        f"WHEN {expression} < {bound} THEN {i}" for i, (bound, _) in enumerate(buckets) if bound is not None
    )
    return f"CASE {cases} ELSE {len(buckets) - 1} END"


def time_ns(moment: dt.datetime) -> int:
    """A time as integer nanoseconds since the epoch, exactly (no float rounding)."""
    return (moment - _EPOCH) // dt.timedelta(microseconds=1) * 1000


def type_label(name: bytes) -> str:
    return extension(name) or NO_EXTENSION


def dir_group(parent: bytes, roots: Sequence[bytes]) -> bytes:
    """The top-level directory a file in directory ``parent`` counts under.

    That is the backed-up path (the longest root holding ``parent``) plus the next
    component below it; files right in a root count under the root. A file outside
    every root (a root that is itself a file) counts under its own directory.
    """
    best: bytes | None = None
    for root in roots:
        r = root.rstrip(b"/")
        if (parent == r or parent.startswith(r + b"/")) and (best is None or len(r) > len(best)):
            best = r
    if best is None:
        return parent or b"/"
    rest = parent[len(best) :].lstrip(b"/")
    top = best + b"/" + rest.split(b"/", 1)[0] if rest else best
    return top or b"/"


@dataclass(frozen=True)
class Group:
    key: str
    files: int
    size: int


@dataclass
class SnapshotStats:
    """One snapshot's figures for one grouping."""

    snapshot_id: str
    time: str
    by: str
    files: int = 0
    size: int = 0
    dirs: int = 0
    symlinks: int = 0
    other: int = 0
    groups: list[Group] = field(default_factory=list)
    largest: list[tuple[bytes, int]] = field(default_factory=list)  # (path, size), largest first


def ordered_groups(by: str, counts: dict[str, tuple[int, int]]) -> list[Group]:
    """Size and age in bucket order; type and directory by bytes, the largest first."""
    groups = [Group(key, files, size) for key, (files, size) in counts.items()]
    if by in ("size", "age"):
        order = {label: i for i, (_, label) in enumerate(SIZE_BUCKETS if by == "size" else AGE_BUCKETS)}
        return sorted(groups, key=lambda g: order[g.key])
    return sorted(groups, key=lambda g: (-g.size, g.key))


def largest(files: Iterable[tuple[bytes, int]], top: int) -> list[tuple[bytes, int]]:
    """The ``top`` largest files; equal sizes by path."""
    return sorted(files, key=lambda f: (-f[1], f[0]))[:top]


@dataclass(frozen=True)
class FileEntry:
    path: bytes
    size: int
    mtime_ns: int


def group_key(by: str, entry: FileEntry, snapshot_ns: int, roots: Sequence[bytes]) -> str:
    if by == "type":
        return type_label(entry.path.rpartition(b"/")[2])
    if by == "size":
        return SIZE_BUCKETS[bucket(entry.size, SIZE_BUCKETS)][1]
    if by == "age":
        return AGE_BUCKETS[bucket(snapshot_ns - entry.mtime_ns, AGE_BUCKETS)][1]
    if by == "dir":
        return dir_group(entry.path.rpartition(b"/")[0], roots).decode("utf-8", "backslashreplace")
    raise ValueError(f"unknown grouping {by!r}")


def fold(
    by: str, entries: Iterable[FileEntry], snapshot_ns: int, roots: Sequence[bytes]
) -> dict[str, tuple[int, int]]:
    """Group key -> (files, bytes)."""
    counts: dict[str, tuple[int, int]] = {}
    for entry in entries:
        key = group_key(by, entry, snapshot_ns, roots)
        files, size = counts.get(key, (0, 0))
        counts[key] = (files + 1, size + entry.size)
    return counts


@dataclass(frozen=True)
class Growth:
    """The change from the previous snapshot of the same host and paths."""

    previous_id: str
    previous_time: str
    files: int
    size: int
    groups: dict[str, tuple[int, int]]  # key -> (files, bytes) change, only keys that changed


def growth(current: SnapshotStats, previous: SnapshotStats) -> Growth:
    before = {g.key: (g.files, g.size) for g in previous.groups}
    after = {g.key: (g.files, g.size) for g in current.groups}
    changed: dict[str, tuple[int, int]] = {}
    for key in before.keys() | after.keys():
        f0, b0 = before.get(key, (0, 0))
        f1, b1 = after.get(key, (0, 0))
        if (f0, b0) != (f1, b1):
            changed[key] = (f1 - f0, b1 - b0)
    return Growth(previous.snapshot_id, previous.time, current.files - previous.files,
                  current.size - previous.size, changed)  # fmt: skip
