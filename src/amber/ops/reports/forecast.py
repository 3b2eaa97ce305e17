"""Capacity forecast: "full in N days" from daily usage samples, by least squares.

As Proxmox Backup Server does: fit a line through (day, used bytes); with at
least :data:`MIN_SAMPLES` samples and a known capacity, the day the line
reaches the capacity is the forecast. A flat or falling line never fills
(``shrinking`` says which). Pure: no I/O.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

MIN_SAMPLES = 7
DAY = 86400.0


@dataclass(frozen=True)
class Sample:
    when: float  # unix time
    used: int  # bytes
    total: int | None = None  # capacity in bytes; None = unknown (object storage without a quota)
    snapshots: int | None = None  # snapshots in the repository that day; None = not counted


@dataclass(frozen=True)
class Forecast:
    samples: int
    slope_per_day: float | None = None  # bytes per day; None = too few samples
    r_squared: float | None = None
    days_until_full: float | None = None  # None = never (not growing), unknown capacity or too few samples
    shrinking: bool = False
    full: bool = False  # the latest sample is already at capacity

    @property
    def enough(self) -> bool:
        return self.slope_per_day is not None

    def describe(self) -> str:
        if self.full:
            return "full now"
        if not self.enough:
            return f"no forecast yet ({self.samples} of {MIN_SAMPLES} daily samples)"
        if self.shrinking:
            return "usage is shrinking; no fill date"
        if self.days_until_full is None:
            return "usage is flat or capacity unknown; no fill date"
        days = math.floor(self.days_until_full)
        return f"full in {days} day{'' if days == 1 else 's'}"


def forecast(samples: Sequence[Sample], now: float) -> Forecast:
    """Fit used = a + b * day over ``samples``; days from ``now`` until used reaches the latest capacity."""
    ordered = sorted(samples, key=lambda s: s.when)
    n = len(ordered)
    latest = ordered[-1] if ordered else None
    full = bool(latest and latest.total is not None and latest.used >= latest.total)
    if n < MIN_SAMPLES:
        return Forecast(n, full=full)
    days = [s.when / DAY for s in ordered]
    used = [float(s.used) for s in ordered]
    try:
        slope, intercept = statistics.linear_regression(days, used)
    except statistics.StatisticsError:  # every sample on the same instant
        return Forecast(n, full=full)
    r2 = _r_squared(days, used, slope, intercept)
    shrinking = slope < 0
    until = None
    if latest is not None and latest.total is not None and slope > 0 and not full:
        full_day = (latest.total - intercept) / slope
        until = max(0.0, full_day - now / DAY)
    return Forecast(n, slope, r2, until, shrinking, full)


def _r_squared(xs: Sequence[float], ys: Sequence[float], slope: float, intercept: float) -> float:
    mean = statistics.fmean(ys)
    total = sum((y - mean) ** 2 for y in ys)
    if total == 0:
        return 1.0
    residual = sum((y - (intercept + slope * x)) ** 2 for x, y in zip(xs, ys, strict=True))
    return max(0.0, 1.0 - residual / total)
