"""What `amber find` and `amber history` ask, and the pure rules that answer it.

Both the catalog and the tree walk produce :class:`Hit` records and filter them with
the same :meth:`FindQuery.matches`, so the two paths give identical answers.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from amber.catalog.versions import fold, walk_order
from amber.errors import UsageError

KIND_BY_LETTER = {"f": "file", "d": "dir", "l": "symlink", "p": "fifo", "c": "chardev", "b": "blockdev"}
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


@dataclass(frozen=True)
class Hit:
    """One path in one snapshot."""

    snapshot_id: str
    snapshot_time: str
    snapshot_order: str  # sorts like the snapshots list
    path: bytes
    kind: str
    size: int
    mtime_ns: int
    mode: int
    sha256: bytes

    def version(self) -> tuple[bytes, str, int, int, int, bytes]:
        return self.path, self.kind, self.size, self.mtime_ns, self.mode, self.sha256


@dataclass(frozen=True)
class SizeBound:
    """``+N`` (larger than), ``-N`` (smaller than) or ``N`` (exactly); K/M/G/T suffixes."""

    op: str
    value: int

    @classmethod
    def parse(cls, text: str) -> SizeBound:
        m = re.fullmatch(r"([+-]?)(\d+)([kmgt]?)i?b?", text.strip().lower())
        if not m:
            raise UsageError(f"--size {text!r}: expected +N, -N or N with an optional K, M, G or T")
        return cls(m.group(1) or "=", int(m.group(2)) * _SIZE_UNITS[m.group(3)])

    def holds(self, size: int) -> bool:
        if self.op == "+":
            return size > self.value
        if self.op == "-":
            return size < self.value
        return size == self.value


def _glob_matcher(pattern: str, ignore_case: bool) -> Callable[[bytes], bool]:
    """fnmatch's rule on raw bytes (latin-1 maps bytes 1:1); with ``ignore_case`` on the
    case-folded texts of name and pattern (:func:`fold`: 'Ä' = 'ä', 'STRASSE' = 'straße')."""
    raw = os.fsencode(pattern)
    if not ignore_case:
        rx = re.compile(fnmatch.translate(raw.decode("latin-1")).encode("latin-1"), re.DOTALL)
        return lambda name: rx.match(name) is not None
    folded_rx = re.compile(fnmatch.translate(fold(raw)), re.DOTALL)
    return lambda name: folded_rx.match(fold(name)) is not None


@dataclass(frozen=True)
class FindQuery:
    patterns: tuple[str, ...]
    ignore_case: bool = False
    kinds: frozenset[str] = frozenset()
    sizes: tuple[SizeBound, ...] = ()
    newer_ns: int | None = None  # mtime strictly after
    older_ns: int | None = None  # mtime strictly before
    snapshot_since: dt.datetime | None = None
    snapshot_until: dt.datetime | None = None
    hosts: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    _compiled: tuple[tuple[bool, Callable[[bytes], bool]], ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.patterns:
            raise UsageError("find: give at least one pattern")
        compiled = tuple((b"/" in os.fsencode(p), _glob_matcher(p, self.ignore_case)) for p in self.patterns)
        object.__setattr__(self, "_compiled", compiled)

    def name_matches(self, path: bytes) -> bool:
        name = path.rpartition(b"/")[2]
        return any(match(path if on_path else name) for on_path, match in self._compiled)

    def on_path(self) -> bool:
        return any(on_path for on_path, _ in self._compiled)

    def matches(self, hit: Hit) -> bool:
        if self.kinds and hit.kind not in self.kinds:
            return False
        if not all(bound.holds(hit.size) for bound in self.sizes):
            return False
        if self.newer_ns is not None and hit.mtime_ns <= self.newer_ns:
            return False
        if self.older_ns is not None and hit.mtime_ns >= self.older_ns:
            return False
        return self.name_matches(hit.path)

    def snapshot_in_range(self, when: dt.datetime) -> bool:
        if self.snapshot_since is not None and when < self.snapshot_since:
            return False
        return self.snapshot_until is None or when <= self.snapshot_until


def ordered(hits: Iterable[Hit], newest_first: bool = False) -> list[Hit]:
    """Snapshots oldest first (or newest first), paths in tree-walk order inside each."""
    by_snapshot = sorted(hits, key=lambda h: walk_order(h.path))
    by_snapshot.sort(key=lambda h: (h.snapshot_order, h.snapshot_id), reverse=newest_first)
    return by_snapshot


@dataclass
class Version:
    """One distinct version of a path and the snapshots it appears in (oldest first)."""

    path: bytes
    kind: str
    size: int
    mtime_ns: int
    mode: int
    sha256: bytes
    snapshots: list[tuple[str, str]]  # (snapshot id, time)

    @property
    def first_seen(self) -> str:
        return self.snapshots[0][1]

    @property
    def last_seen(self) -> str:
        return self.snapshots[-1][1]


def group_versions(hits: Iterable[Hit]) -> list[Version]:
    """Hits folded into versions, in order of first appearance."""
    found: dict[tuple[bytes, str, int, int, int, bytes], Version] = {}
    for hit in ordered(hits):
        key = hit.version()
        version = found.get(key)
        if version is None:
            version = found[key] = Version(*key, snapshots=[])
        version.snapshots.append((hit.snapshot_id, hit.snapshot_time))
    return sorted(found.values(), key=lambda v: (v.snapshots[0][1], walk_order(v.path)))


@dataclass(frozen=True)
class HistoryEvent:
    """``appeared``, ``changed`` or ``disappeared`` at a snapshot."""

    event: str
    snapshot_id: str
    snapshot_time: str
    hit: Hit | None


def history_events(timeline: Iterable[tuple[str, str, Hit | None]]) -> Iterator[HistoryEvent]:
    """Events from (snapshot id, time, the path's hit or None), oldest snapshot first."""
    previous: Hit | None = None
    for sid, when, hit in timeline:
        if hit is None:
            if previous is not None:
                yield HistoryEvent("disappeared", sid, when, None)
        elif previous is None:
            yield HistoryEvent("appeared", sid, when, hit)
        elif hit.version() != previous.version():
            yield HistoryEvent("changed", sid, when, hit)
        previous = hit
