"""How long restoring a whole snapshot would take, from timed restores of samples. Pure.

Restoring a file costs a fixed amount (create it, set its metadata, find its
blobs) plus its bytes at the restore's throughput: ``t = files * c + bytes * s``
(``s`` = seconds per byte). One small sample cannot tell the two apart: 20 small
files restored in 0.015 s, and scaling that by bytes alone made the same 162 MiB
look like 1 s on one run and 63 s on the next. A drill therefore times batches
(:class:`Batch`), one of them at least ``MIN_TIMING_BYTES`` when the snapshot is
that big, and fits ``c`` and ``s`` by least squares, neither negative. The
estimate for ``N`` files and ``B`` bytes is ``N * c + B * s``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MIN_TIMING_BYTES = 16 << 20  # a timing batch restores at least this much, when there is that much
MAX_TIMING_FILES = 1000  # ... or this many files, whichever comes first


@dataclass(frozen=True)
class Batch:
    files: int
    bytes: int
    seconds: float


def fit(batches: Sequence[Batch]) -> tuple[float, float]:
    """(seconds per file, seconds per byte) that best explain ``batches``; (0, 0) without data."""
    rows = [(float(b.files), float(b.bytes), b.seconds) for b in batches if b.files and b.seconds >= 0]
    if not any(t > 0 for _, _, t in rows):
        return 0.0, 0.0
    kk = sum(k * k for k, _, _ in rows)
    kb = sum(k * b for k, b, _ in rows)
    bb = sum(b * b for _, b, _ in rows)
    kt = sum(k * t for k, _, t in rows)
    bt = sum(b * t for _, b, t in rows)
    candidates = []
    det = kk * bb - kb * kb
    if det > 1e-9 * kk * bb:
        c, s = (kt * bb - bt * kb) / det, (bt * kk - kt * kb) / det
        if c >= 0 and s >= 0:
            candidates.append((c, s))
    if bb > 0:
        candidates.append((0.0, bt / bb))  # all of it throughput
    candidates.append((kt / kk, 0.0))  # all of it per-file cost (only empty files)

    def residual(cs: tuple[float, float]) -> float:
        return sum((k * cs[0] + b * cs[1] - t) ** 2 for k, b, t in rows)

    return min(candidates, key=residual)


def estimate(batches: Sequence[Batch], files: int, total_bytes: int) -> float:
    """Seconds to restore ``files`` files of ``total_bytes`` bytes, at the pace ``batches`` showed."""
    per_file, per_byte = fit(batches)
    return files * per_file + total_bytes * per_byte
