"""The capacity forecast: exact lines are recovered; too few samples and shrinking are said."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amber.ops.reports.forecast import DAY, MIN_SAMPLES, Sample, forecast

START = 20_000 * DAY


def line(n: int, used0: int, per_day: int, total: int | None) -> list[Sample]:
    return [Sample(START + i * DAY, used0 + i * per_day, total) for i in range(n)]


@given(
    n=st.integers(MIN_SAMPLES, 60),
    used0=st.integers(0, 10**12),
    per_day=st.integers(1, 10**10),
    headroom=st.integers(1, 10**13),
)
def test_exact_growth_is_recovered(n: int, used0: int, per_day: int, headroom: int) -> None:
    samples = line(n, used0, per_day, None)
    last = samples[-1].used
    total = last + headroom
    samples = [Sample(s.when, s.used, total) for s in samples]
    now = samples[-1].when
    result = forecast(samples, now)
    assert result.slope_per_day == pytest.approx(per_day, rel=1e-6)
    assert result.days_until_full == pytest.approx(headroom / per_day, rel=1e-6, abs=1e-3)
    assert not result.shrinking
    assert result.r_squared == pytest.approx(1.0)


@given(n=st.integers(MIN_SAMPLES, 40), per_day=st.integers(1, 10**9))
def test_shrinking_never_fills(n: int, per_day: int) -> None:
    result = forecast(line(n, 10**12, -per_day, 2 * 10**12), START + n * DAY)
    assert result.shrinking and result.days_until_full is None
    assert "shrinking" in result.describe()


@given(st.lists(st.integers(0, 10**12), max_size=MIN_SAMPLES - 1))
def test_too_few_samples_give_no_forecast(used: list[int]) -> None:
    samples = [Sample(START + i * DAY, u, 10**13) for i, u in enumerate(used)]
    result = forecast(samples, START)
    assert not result.enough and result.days_until_full is None
    assert f"{len(used)} of {MIN_SAMPLES}" in result.describe()


@pytest.mark.parametrize(
    ("samples", "expect"),
    [
        (line(10, 100, 10, 290), "full in 10 days"),  # last 190 at day 9; 290 at day 19
        (line(10, 100, 0, 290), "flat"),
        (line(10, 100, 10, None), "capacity unknown"),
        (line(3, 100, 10, 100), "full now"),
        ([Sample(START, 5, 10)] * 8, "no forecast"),  # all on one instant: no line
    ],
)
def test_describe(samples: list[Sample], expect: str) -> None:
    assert expect in forecast(samples, samples[-1].when).describe()


def test_forecast_counts_from_now() -> None:
    samples = line(10, 100, 10, 290)
    later = forecast(samples, samples[-1].when + 4 * DAY)
    assert later.days_until_full is not None and math.isclose(later.days_until_full, 6.0)
