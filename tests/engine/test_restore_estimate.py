"""The full-restore estimate: a per-file cost and a throughput, fitted to timed batches."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amber.engine.restore_estimate import Batch, estimate, fit


def timed(files: int, size: int, per_file: float, per_byte: float) -> Batch:
    return Batch(files, size, files * per_file + size * per_byte)


C, S = 0.0005, 1 / (100 << 20)  # 0.5 ms a file, 100 MiB/s


@pytest.mark.parametrize(("batches", "files", "size", "expected"), [
    ([], 100, 1 << 20, 0.0),  # nothing timed
    ([timed(3000, 160 << 20, C, S)], 3000, 160 << 20, 3000 * C + 160 * 0.01),  # a full drill: its own time
    ([timed(20, 200_000, C, S), timed(1000, 16 << 20, C, S)], 7700, 162 << 20, 7700 * C + 162 * 0.01),
    ([timed(20, 20_000, C, 0.0), timed(400, 400_000, C, 0.0)], 1000, 1 << 20, 1000 * C),  # per-file only
    ([timed(2, 64 << 20, 0.0, S), timed(5, 160 << 20, 0.0, S)], 10, 1 << 30, 1024 * 0.01),  # bytes only
])  # fmt: skip
def test_estimate(batches: list[Batch], files: int, size: int, expected: float) -> None:
    assert estimate(batches, files, size) == pytest.approx(expected, rel=1e-6)


def test_a_tiny_noisy_sample_does_not_swing_the_estimate() -> None:
    """20 small files whose time is mostly noise, beside a real batch: the old bytes-only rate
    varied 60-fold between such runs; the fit moves by the timing batch's share only."""
    truth = 7700 * C + (162 << 20) * S
    timing = timed(1000, 16 << 20, C, S)
    for noise in (0.0, 0.01, 0.05):
        tiny = Batch(20, 30_000, 20 * C + 30_000 * S + noise)
        assert estimate([tiny, timing], 7700, 162 << 20) == pytest.approx(truth, rel=0.1)


@given(
    c=st.one_of(st.just(0.0), st.floats(1e-7, 0.01)), s=st.one_of(st.just(0.0), st.floats(1e-12, 1e-6)),
    k1=st.integers(1, 50), b1=st.integers(0, 1 << 20),
    k2=st.integers(100, 2000), b2=st.integers(1 << 20, 1 << 26),
)  # fmt: skip
def test_fit_reproduces_exact_batches(c: float, s: float, k1: int, b1: int, k2: int, b2: int) -> None:
    batches = [timed(k1, b1, c, s), timed(k2, b2, c, s)]
    per_file, per_byte = fit(batches)
    assert per_file >= 0 and per_byte >= 0
    scale = max(b.seconds for b in batches)
    for b in batches:  # whatever split it picks, it explains what was measured (to float conditioning)
        assert b.files * per_file + b.bytes * per_byte == pytest.approx(b.seconds, abs=1e-4 * scale + 1e-12)
