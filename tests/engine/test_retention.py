"""Retention policy (restic ``forget`` semantics): table-driven, pure, no repository."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from amber.engine.retention import (
    Duration,
    GroupKey,
    Policy,
    SnapshotRecord,
    apply_policy,
    parse_duration,
    parse_group_by,
    plan,
)
from amber.errors import UsageError

BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.UTC


def t(text: str, tz: dt.tzinfo = UTC, fold: int = 0) -> dt.datetime:
    """'2024-05-10 12:00' in ``tz`` (naive text, so the zone's rules apply)."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=tz, fold=fold)


def snaps(*times: dt.datetime, tags: dict[int, tuple[str, ...]] | None = None) -> list[SnapshotRecord]:
    """Snapshots named s0, s1, ... in the order given (any order: the policy sorts)."""
    tags = tags or {}
    return [
        SnapshotRecord(f"s{i}", moment, "host", ("/data",), tags.get(i, ())) for i, moment in enumerate(times)
    ]


def kept(records: list[SnapshotRecord], policy: Policy, now: dt.datetime | None = None) -> set[str]:
    keep, remove, reasons = apply_policy(records, policy, now)
    assert {s.id for s in keep} | {s.id for s in remove} == {s.id for s in records}
    assert not {s.id for s in keep} & {s.id for s in remove}
    assert set(reasons) == {s.id for s in keep}
    assert all(reasons.values())
    return {s.id for s in keep}


DAYS = snaps(t("2024-05-01 10:00"), t("2024-05-01 12:00"), t("2024-05-02 09:00"),
             t("2024-05-03 08:00"), t("2024-05-03 20:00"))  # fmt: skip

# (name, snapshots, policy, expected kept IDs)
CASES: list[tuple[str, list[SnapshotRecord], Policy, set[str]]] = [
    ("last 2", DAYS, Policy(keep_last=2), {"s4", "s3"}),
    ("last more than exist", DAYS, Policy(keep_last=10), {"s0", "s1", "s2", "s3", "s4"}),
    ("daily 2: newest per day", DAYS, Policy(keep_daily=2), {"s4", "s2"}),
    # with counts left at the oldest snapshot, the oldest is kept too (longest history)
    ("daily 5: fewer days than counts", DAYS, Policy(keep_daily=5), {"s4", "s2", "s1", "s0"}),
    ("daily unlimited", DAYS, Policy(keep_daily=-1), {"s4", "s2", "s1", "s0"}),
    ("days without snapshots do not count",
     snaps(t("2024-05-01 10:00"), t("2024-05-05 10:00"), t("2024-05-09 10:00")),
     Policy(keep_daily=2), {"s2", "s1"}),
    ("hourly 2",
     snaps(t("2024-05-01 10:05"), t("2024-05-01 10:50"), t("2024-05-01 11:10"), t("2024-05-01 12:00")),
     Policy(keep_hourly=2), {"s3", "s2"}),
    ("weekly: ISO week 53 spans the new year",
     snaps(t("2020-12-31 12:00"), t("2021-01-03 12:00"), t("2021-01-04 12:00"),
           t("2021-01-10 12:00"), t("2021-01-11 12:00")),
     Policy(keep_weekly=3), {"s4", "s3", "s1"}),
    ("weekly: 30 Dec 2024 is in ISO week 1 of 2025",
     snaps(t("2024-12-29 12:00"), t("2024-12-30 12:00"), t("2025-01-05 12:00")),
     Policy(keep_weekly=2), {"s2", "s0"}),
    ("monthly 2",
     snaps(t("2024-01-31 12:00"), t("2024-02-01 12:00"), t("2024-02-29 12:00"), t("2024-03-15 12:00")),
     Policy(keep_monthly=2), {"s3", "s2"}),
    ("yearly 2 across a year boundary",
     snaps(t("2022-12-31 23:59"), t("2023-01-01 00:01"), t("2023-06-01 12:00"), t("2024-01-01 00:00")),
     Policy(keep_yearly=2), {"s3", "s2"}),
    ("yearly 3",
     snaps(t("2022-12-31 23:59"), t("2023-01-01 00:01"), t("2023-06-01 12:00"), t("2024-01-01 00:00")),
     Policy(keep_yearly=3), {"s3", "s2", "s0"}),
    # 23:30 on 31 Dec at -05:00 is already 2024 in UTC; by UTC the result would be {s1, s3}
    ("buckets use the snapshot's own wall clock, not UTC",
     snaps(t("2023-12-31 23:30", dt.timezone(dt.timedelta(hours=-5))), t("2024-01-01 10:00"),
           t("2024-01-01 06:00"), t("2023-06-01 12:00")),
     Policy(keep_yearly=2), {"s1", "s0"}),
    ("within 2d counts from the newest snapshot, exclusive",
     snaps(t("2024-05-10 12:00"), t("2024-05-09 12:00"), t("2024-05-08 12:00"),
           t("2024-05-08 13:00"), t("2024-05-07 12:00")),
     Policy(keep_within=Duration(days=2)), {"s0", "s1", "s3"}),
    ("within 1m from 31 March rolls over like Go's AddDate",
     snaps(t("2024-03-31 12:00"), t("2024-03-02 12:00"), t("2024-03-02 13:00"), t("2024-02-29 12:00")),
     Policy(keep_within=Duration(months=1)), {"s0", "s2"}),
    ("within 1y2m3d4h",
     snaps(t("2024-06-05 10:00"), t("2023-04-02 06:30"), t("2023-04-02 05:30")),
     Policy(keep_within=Duration(1, 2, 3, 4)), {"s0", "s1"}),
    ("within-daily 3d: newest per day inside the window",
     snaps(t("2024-05-10 18:00"), t("2024-05-10 08:00"), t("2024-05-09 20:00"), t("2024-05-08 10:00"),
           t("2024-05-07 19:00"), t("2024-05-06 12:00")),
     Policy(keep_within_daily=Duration(days=3)), {"s0", "s2", "s3", "s4"}),
    ("within-hourly 2h",
     snaps(t("2024-05-10 18:10"), t("2024-05-10 18:40"), t("2024-05-10 17:20"), t("2024-05-10 16:50"),
           t("2024-05-10 16:30")),
     Policy(keep_within_hourly=Duration(hours=2)), {"s1", "s2", "s3"}),
    ("within-weekly 1m (31 May - 1m = 31 Apr = 1 May)",
     snaps(t("2024-05-31 12:00"), t("2024-05-29 12:00"), t("2024-05-20 12:00"), t("2024-05-13 12:00"),
           t("2024-05-02 12:00"), t("2024-04-20 12:00")),
     Policy(keep_within_weekly=Duration(months=1)), {"s0", "s2", "s3", "s4"}),
    ("within-monthly 1y",
     snaps(t("2024-05-31 12:00"), t("2024-05-01 12:00"), t("2024-01-10 12:00"), t("2023-06-30 12:00"),
           t("2023-05-31 12:00"), t("2023-05-01 12:00")),
     Policy(keep_within_monthly=Duration(years=1)), {"s0", "s2", "s3"}),
    ("within-yearly 2y",
     snaps(t("2024-05-31 12:00"), t("2023-02-01 12:00"), t("2023-01-01 12:00"), t("2022-06-01 12:00"),
           t("2022-05-30 12:00")),
     Policy(keep_within_yearly=Duration(years=2)), {"s0", "s1", "s3"}),
    ("keep-tag: a,b needs both; tags are not counted",
     snaps(t("2024-05-01 10:00"), t("2024-05-02 10:00"), t("2024-05-03 10:00"), t("2024-05-04 10:00"),
           tags={0: ("a",), 1: ("a", "b"), 2: ("x",)}),
     Policy(keep_tags=("a,b", "x")), {"s1", "s2"}),
    ("last 1 + daily 2 + monthly 2",
     snaps(t("2024-01-15 10:00"), t("2024-02-10 10:00"), t("2024-02-20 09:00"), t("2024-02-20 18:00"),
           t("2024-02-21 07:00"), t("2024-02-21 08:00")),
     Policy(keep_last=1, keep_daily=2, keep_monthly=2), {"s5", "s3", "s0"}),
    ("last 3 + weekly 1: union of the rules",
     snaps(t("2024-05-01 10:00"), t("2024-05-02 10:00"), t("2024-05-13 10:00"), t("2024-05-14 10:00"),
           t("2024-05-15 10:00"), t("2024-05-16 10:00")),
     Policy(keep_last=3, keep_weekly=1), {"s5", "s4", "s3"}),
    ("last 1 + weekly 2",
     snaps(t("2024-05-01 10:00"), t("2024-05-02 10:00"), t("2024-05-13 10:00"), t("2024-05-14 10:00"),
           t("2024-05-15 10:00"), t("2024-05-16 10:00")),
     Policy(keep_last=1, keep_weekly=2), {"s5", "s1"}),
    ("within 2d + monthly 3",
     snaps(t("2024-03-20 10:00"), t("2024-04-20 10:00"), t("2024-04-29 10:00"), t("2024-04-30 10:00"),
           t("2024-05-01 10:00")),
     Policy(keep_within=Duration(days=2), keep_monthly=3), {"s4", "s3", "s0"}),
    ("hourly + daily + weekly + monthly + yearly",
     snaps(t("2022-07-01 10:00"), t("2023-03-01 10:00"), t("2023-03-31 10:00"), t("2023-04-10 10:00"),
           t("2023-04-11 10:00"), t("2023-04-11 11:00"), t("2023-04-11 11:30")),
     Policy(keep_hourly=1, keep_daily=2, keep_weekly=2, keep_monthly=2, keep_yearly=2),
     {"s6", "s3", "s2", "s0"}),
    # DST, Europe/Berlin. 27 Oct 2024: 03:00 CEST -> 02:00 CET, so 02:30 happens twice.
    ("DST fall-back: the repeated hour is one hourly bucket",
     snaps(t("2024-10-27 01:30", BERLIN), t("2024-10-27 02:30", BERLIN, fold=0),
           t("2024-10-27 02:30", BERLIN, fold=1)),
     Policy(keep_hourly=2), {"s2", "s0"}),
    ("DST: 00:30 CEST and 23:30 CET are the same local day (different UTC days)",
     snaps(t("2024-10-26 12:00", BERLIN), t("2024-10-27 00:30", BERLIN), t("2024-10-27 23:30", BERLIN)),
     Policy(keep_daily=2), {"s2", "s0"}),
    ("DST spring-forward day (23 hours) is one daily bucket",
     snaps(t("2024-03-30 23:30", BERLIN), t("2024-03-31 00:30", BERLIN), t("2024-03-31 23:30", BERLIN)),
     Policy(keep_daily=2), {"s2", "s0"}),
    ("DST: within 1d is one calendar day back (25 real hours in October)",
     snaps(t("2024-10-27 12:00", BERLIN), t("2024-10-26 12:30", BERLIN), t("2024-10-26 11:30", BERLIN)),
     Policy(keep_within=Duration(days=1)), {"s0", "s1"}),
    ("DST: within 24h is 24 real hours",
     snaps(t("2024-10-27 12:00", BERLIN), t("2024-10-26 12:30", BERLIN), t("2024-10-26 13:30", BERLIN)),
     Policy(keep_within=Duration(hours=24)), {"s0", "s2"}),
]


@pytest.mark.parametrize(("name", "records", "policy", "expected"), CASES, ids=[c[0] for c in CASES])
def test_policy_table(name: str, records: list[SnapshotRecord], policy: Policy, expected: set[str]) -> None:
    assert kept(records, policy) == expected
    assert kept(list(reversed(records)), policy) == expected  # input order does not matter


def test_reasons_name_every_rule_that_keeps_a_snapshot() -> None:
    records = snaps(t("2024-01-15 10:00"), t("2024-02-20 18:00"), t("2024-02-21 08:00"),
                    tags={2: ("x",)})  # fmt: skip
    policy = Policy(keep_last=1, keep_daily=5, keep_monthly=1, keep_within=Duration(days=1), keep_tags=("x",))
    keep, remove, reasons = apply_policy(records, policy)
    assert [s.id for s in keep] == ["s2", "s1", "s0"] and remove == []
    assert reasons["s2"] == ["has tags x", "within 1d", "last snapshot", "daily snapshot", "monthly snapshot"]
    assert reasons["s1"] == ["within 1d", "daily snapshot"]
    assert reasons["s0"] == ["daily snapshot"]


def test_oldest_snapshot_reason_when_counts_are_left() -> None:
    records = snaps(t("2024-05-01 10:00"), t("2024-05-01 12:00"))
    _, remove, reasons = apply_policy(records, Policy(keep_daily=3))
    assert remove == []
    assert reasons == {"s1": ["daily snapshot"], "s0": ["oldest daily snapshot"]}


def test_tagged_snapshot_still_uses_a_bucket() -> None:
    # the newest snapshot is kept by its tag AND consumes keep-last 1 (restic semantics)
    records = snaps(t("2024-05-01 10:00"), t("2024-05-02 10:00"), tags={1: ("x",)})
    assert kept(records, Policy(keep_last=1, keep_tags=("x",))) == {"s1"}


def test_ties_are_broken_by_id_in_any_input_order() -> None:
    same = t("2024-05-01 10:00")
    a, b = SnapshotRecord("aaaa", same), SnapshotRecord("bbbb", same)
    for records in ([a, b], [b, a]):
        keep, remove, _ = apply_policy(records, Policy(keep_last=1))
        assert [s.id for s in keep] == ["bbbb"] and [s.id for s in remove] == ["aaaa"]


def test_future_snapshots_do_not_move_the_within_window() -> None:
    records = snaps(t("2030-01-01 00:00"), t("2024-05-09 12:00"), t("2024-04-01 12:00"))
    policy = Policy(keep_within=Duration(days=7))
    assert kept(records, policy, now=t("2024-05-10 00:00")) == {"s0", "s1"}
    assert kept(records, policy) == {"s0"}  # without a clock the newest snapshot is the reference


def test_empty_group_and_empty_policy() -> None:
    assert apply_policy([], Policy(keep_last=1)) == ([], [], {})
    with pytest.raises(UsageError, match="no policy"):
        apply_policy(DAYS, Policy())
    with pytest.raises(UsageError, match="no policy"):
        plan(DAYS, Policy(keep_within=Duration()))
    with pytest.raises(UsageError, match="invalid keep count"):
        apply_policy(DAYS, Policy(keep_daily=-2))


def _mixed() -> list[SnapshotRecord]:
    base = t("2024-05-01 10:00")
    rows = [("h1", ("/a",), ()), ("h1", ("/a",), ("x",)), ("h1", ("/b",), ()),
            ("h2", ("/a",), ()), ("h2", ("/a",), ("x",)), ("h1", ("/b", "/a"), ())]  # fmt: skip
    return [
        SnapshotRecord(f"s{i}", base + dt.timedelta(hours=i), host, paths, tags)
        for i, (host, paths, tags) in enumerate(rows)
    ]


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        ("host,paths", {GroupKey("h1", ("/a",)): {"s1"}, GroupKey("h1", ("/a", "/b")): {"s5"},
                        GroupKey("h1", ("/b",)): {"s2"}, GroupKey("h2", ("/a",)): {"s4"}}),
        ("host", {GroupKey("h1"): {"s5"}, GroupKey("h2"): {"s4"}}),
        ("paths", {GroupKey(paths=("/a",)): {"s4"}, GroupKey(paths=("/a", "/b")): {"s5"},
                   GroupKey(paths=("/b",)): {"s2"}}),
        ("tags", {GroupKey(tags=()): {"s5"}, GroupKey(tags=("x",)): {"s4"}}),
        ("host,tags", {GroupKey("h1", tags=()): {"s5"}, GroupKey("h1", tags=("x",)): {"s1"},
                       GroupKey("h2", tags=()): {"s3"}, GroupKey("h2", tags=("x",)): {"s4"}}),
        ("", {GroupKey(): {"s5"}}),
    ],
)  # fmt: skip
def test_group_by(group_by: str, expected: dict[GroupKey, set[str]]) -> None:
    results = plan(_mixed(), Policy(keep_last=1), parse_group_by(group_by))
    assert {r.key: {s.id for s in r.keep} for r in results} == expected
    assert [r.key for r in results] == sorted((r.key for r in results), key=GroupKey.sort_key)


def test_group_by_rejects_unknown_field() -> None:
    with pytest.raises(UsageError, match="group-by"):
        parse_group_by("host,colour")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1y2m3d4h", Duration(1, 2, 3, 4)), ("4h", Duration(hours=4)), ("2d1y", Duration(years=1, days=2)),
     ("18m", Duration(months=18)), ("0d", Duration()), ("2w", Duration(days=14)),
     ("1W3D", Duration(days=10)), ("1Y", Duration(years=1))],
)  # fmt: skip
def test_parse_duration(text: str, expected: Duration) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "1", "1x", "d", "1d1d", "1d1D", "-1d", "1.5d", "1d ", "3 d"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("duration", "moment", "expected"),
    [
        (Duration(years=1, months=2, days=3, hours=4), "2024-06-05 10:00", "2023-04-02 06:00"),
        (Duration(months=1), "2023-03-31 12:00", "2023-03-03 12:00"),  # 31 Feb -> 3 Mar
        (Duration(years=1), "2024-02-29 12:00", "2023-03-01 12:00"),
        (Duration(months=13), "2024-01-15 00:00", "2022-12-15 00:00"),
        (Duration(hours=25), "2024-03-01 00:30", "2024-02-28 23:30"),
    ],
)
def test_duration_before(duration: Duration, moment: str, expected: str) -> None:
    assert duration.before(t(moment)) == t(expected)
    assert str(parse_duration(str(duration))) == str(duration)
