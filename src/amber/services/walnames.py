"""PostgreSQL WAL file names, positions and the chain a base backup needs. Pure: no I/O.

PostgreSQL names what it archives:

* a segment ``TTTTTTTTLLLLLLLLSSSSSSSS``: timeline, then the segment's position
  (high 32 bits of the LSN, then the segment number within them);
* ``<segment>.partial``: the last, incomplete segment of a timeline left by a promotion;
* ``<segment>.XXXXXXXX.backup``: a base backup's start and stop record;
* ``TTTTTTTT.history``: how timeline T branched off its parents.

The repository stores each as ``<cluster>.<file name>``; a cluster name tells
servers archiving into one repository apart (design §12d).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from amber.errors import UsageError

DEFAULT_SEGMENT_SIZE = 16 << 20
_HEX8 = "[0-9A-F]{8}"
_SEGMENT = re.compile(f"({_HEX8})({_HEX8}{_HEX8})")
_PATTERNS = {
    "segment": re.compile(f"{_SEGMENT.pattern}"),
    "partial": re.compile(f"{_SEGMENT.pattern}\\.partial"),
    "backup": re.compile(f"{_SEGMENT.pattern}\\.{_HEX8}\\.backup"),
    "history": re.compile(f"({_HEX8})\\.history"),
}
_CLUSTER = re.compile(r"[A-Za-z0-9_-]{1,64}")
_LSN = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")
MAX_TIMELINE = 0xFFFFFFFF
# A base backup's own WAL (start to stop): 16 TiB of 16 MiB segments. A record claiming more
# is not believed: check lists every segment of the range.
MAX_BASE_SEGMENTS = 1 << 20


@dataclass(frozen=True, order=True)
class WalName:
    file: str  # the WAL file name as PostgreSQL gives it
    kind: str  # segment, partial, backup, history
    timeline: int
    position: str  # 16 hex digits (log, segment); "" for a history file


def parse(file: str) -> WalName:
    """A WAL file name, or UsageError: only PostgreSQL's own names are archived."""
    for kind, pattern in _PATTERNS.items():
        m = pattern.fullmatch(file)
        if m:
            return WalName(file, kind, int(m.group(1), 16), m.group(2) if kind != "history" else "")
    raise UsageError(f"{file!r} is not a PostgreSQL WAL file name")


def check_cluster(cluster: str) -> str:
    if not _CLUSTER.fullmatch(cluster):
        raise UsageError(f"invalid cluster name {cluster!r}: letters, digits, _ and - (at most 64)")
    return cluster


def object_name(cluster: str, file: str) -> str:
    return f"{check_cluster(cluster)}.{parse(file).file}"


def split_object_name(name: str) -> tuple[str, WalName] | None:
    """(cluster, WAL name) of a stored object's name; None for a name amber did not write."""
    cluster, dot, file = name.partition(".")
    if not dot or not _CLUSTER.fullmatch(cluster):
        return None
    try:
        return cluster, parse(file)
    except UsageError:
        return None


def parse_lsn(lsn: str) -> int:
    """``16/B374D848`` -> its 64-bit integer."""
    m = _LSN.fullmatch(lsn.strip())
    if not m:
        raise UsageError(f"{lsn!r} is not an LSN (like 0/3000028)")
    return (int(m.group(1), 16) << 32) | int(m.group(2), 16)


def range_problem(timeline: int, start_lsn: str, stop_lsn: str, segment_size: int) -> str:
    """Why a base backup's WAL range cannot be believed ("" when it can): it is read back
    from the repository, so a key holder may have written anything there."""
    try:
        _per_log(segment_size)
        start, stop = parse_lsn(start_lsn), parse_lsn(stop_lsn)
    except UsageError as exc:
        return exc.message
    if not 1 <= timeline <= MAX_TIMELINE:
        return f"timeline {timeline} is out of range"
    if stop < start:
        return f"it ends ({stop_lsn}) before it starts ({start_lsn})"
    if stop // segment_size - start // segment_size >= MAX_BASE_SEGMENTS:
        return f"its WAL range spans more than {MAX_BASE_SEGMENTS} segments"
    return ""


def format_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def _per_log(segment_size: int) -> int:
    if segment_size <= 0 or segment_size & (segment_size - 1) or not (1 << 20) <= segment_size <= (1 << 30):
        raise UsageError(f"WAL segment size {segment_size} is not a power of two from 1 MiB to 1 GiB")
    return 0x100000000 // segment_size


def segment_position(lsn: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> str:
    """The 16-digit position of the segment holding ``lsn``."""
    per_log = _per_log(segment_size)
    number = lsn // segment_size
    return f"{number // per_log:08X}{number % per_log:08X}"


def segment_name(timeline: int, lsn: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> str:
    return f"{timeline:08X}{segment_position(lsn, segment_size)}"


def next_position(position: str, segment_size: int = DEFAULT_SEGMENT_SIZE) -> str:
    per_log = _per_log(segment_size)
    number = int(position[:8], 16) * per_log + int(position[8:], 16) + 1
    return f"{number // per_log:08X}{number % per_log:08X}"


def expirable(names: Iterable[WalName], oldest_needed: str) -> list[WalName]:
    """What a retention run may delete: every file before ``oldest_needed`` (the segment
    position where the oldest kept base backup starts), on any timeline. History files
    are kept: they are tiny and recovery to any later timeline reads them."""
    return sorted(n for n in names if n.kind != "history" and n.position < oldest_needed)


def missing_positions(
    names: Iterable[WalName], start: str, segment_size: int = DEFAULT_SEGMENT_SIZE, limit: int = 100
) -> list[str]:  # fmt: skip
    """Segment positions from ``start`` to the newest archived one that no timeline has:
    a gap there stops recovery at the gap. At most ``limit`` are returned."""
    have = {n.position for n in names if n.kind in ("segment", "partial")}
    if not have:
        return []
    last = max(have)
    gaps: list[str] = []
    pos = start
    while pos <= last and len(gaps) < limit:
        if pos not in have:
            gaps.append(pos)
        pos = next_position(pos, segment_size)
    return gaps
