"""Snapshot names round-trip, sort in time order, and never match anything amber did not name."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amber.sources.naming import SnapshotName, new_name, parse_name

JOBS = st.from_regex(r"[A-Za-z0-9_.+]{1,8}(-[A-Za-z0-9_.+]{1,8}){0,3}", fullmatch=True).filter(
    lambda j: "pre-rollback" not in j
)
TIMES = st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2200, 1, 1), timezones=st.just(dt.UTC))


@given(JOBS, TIMES, st.booleans())
def test_names_round_trip(job: str, when: dt.datetime, pre: bool) -> None:
    name = new_name(job, when, pre)
    assert parse_name(str(name)) == name
    assert name.created.microsecond % 1000 == 0


@given(JOBS, TIMES, TIMES)
def test_names_sort_in_time_order(job: str, a: dt.datetime, b: dt.datetime) -> None:
    first, second = str(new_name(job, min(a, b))), str(new_name(job, max(a, b)))
    assert first <= second


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("amber-home-20261203T080540.123Z", ("home", False)),
        ("amber-my-job-20261203T080540.123Z", ("my-job", False)),
        ("amber-home-pre-rollback-20261203T080540.123Z", ("home", True)),
        ("amber-home-20261203T080540Z", None),  # no milliseconds: not ours
        ("borgmatic-1234", None),
        ("amber-20261203T080540.123Z", None),  # no job
        ("autosnap_2026-12-03_hourly", None),
        ("amber-home-20261203T080540.123Z.root", None),  # an LVM snapshot LV name, not a run name
    ],
)
def test_parse_name(text: str, expected: tuple[str, bool] | None) -> None:
    parsed = parse_name(text)
    assert (None if parsed is None else (parsed.job, parsed.pre_rollback)) == expected


def test_created_is_utc() -> None:
    local = dt.datetime(2026, 12, 3, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert str(new_name("home", local)) == "amber-home-20261203T080000.000Z"
    assert isinstance(parse_name("amber-home-20261203T080000.000Z"), SnapshotName)
