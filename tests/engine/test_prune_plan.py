"""Prune planning is a pure function: table-driven cases."""

from __future__ import annotations

import pytest

from amber.engine.prune_plan import (
    DATA,
    TREE,
    PackStat,
    PlanOptions,
    parse_max_unused,
    parse_size,
    plan_prune,
)
from amber.errors import UsageError

MiB = 1 << 20


def st(blobs: int, size: int, used_blobs: int, used: int, kind: int = DATA) -> PackStat:
    return PackStat(blobs, size, used_blobs, used, kind)


CASES = [
    # (name, usage, stored sizes, pending, options, delete, repack, unindexed, drop_missing, damaged)
    ("all used: keep", {"a": st(4, 16 * MiB, 4, 16 * MiB)}, {"a": 16 * MiB}, set(), PlanOptions(),
     [], [], [], [], []),
    ("nothing used: delete", {"a": st(4, 16 * MiB, 0, 0)}, {"a": 16 * MiB}, set(), PlanOptions(),
     ["a"], [], [], [], []),
    ("half used, 5% tolerated: repack", {"a": st(4, 16 * MiB, 2, 8 * MiB), "b": st(4, 16 * MiB, 4, 16 * MiB)},
     {"a": 16 * MiB, "b": 16 * MiB}, set(), PlanOptions(), [], ["a"], [], [], []),
    ("a little unused, within 5%: keep",
     {"a": st(100, 100 * MiB, 99, 99 * MiB), "b": st(4, 16 * MiB, 4, 16 * MiB)},
     {"a": 100 * MiB, "b": 16 * MiB}, set(), PlanOptions(), [], [], [], [], []),
    ("unlimited: never repack", {"a": st(4, 16 * MiB, 1, 1 * MiB)}, {"a": 16 * MiB}, set(),
     PlanOptions(max_unused=None), [], [], [], [], []),
    ("0%: repack anything unused", {"a": st(100, 100 * MiB, 99, 99 * MiB)}, {"a": 100 * MiB}, set(),
     PlanOptions(max_unused=0), [], ["a"], [], [], []),
    ("absolute limit", {"a": st(4, 16 * MiB, 2, 8 * MiB), "b": st(4, 16 * MiB, 3, 12 * MiB)},
     {"a": 16 * MiB, "b": 16 * MiB}, set(), PlanOptions(max_unused=None, max_unused_bytes=5 * MiB),
     [], ["a"], [], [], []),
    ("most wasteful first until within limit",
     {"a": st(4, 16 * MiB, 3, 12 * MiB), "b": st(4, 16 * MiB, 1, 4 * MiB), "c": st(4, 16 * MiB, 4, 16 * MiB)},
     {"a": 16 * MiB, "b": 16 * MiB, "c": 16 * MiB}, set(),
     PlanOptions(max_unused=None, max_unused_bytes=4 * MiB), [], ["b"], [], [], []),
    ("repack size cap skips packs that do not fit",
     {"a": st(4, 32 * MiB, 1, 1 * MiB), "b": st(4, 16 * MiB, 1, 1 * MiB)},
     {"a": 32 * MiB, "b": 16 * MiB}, set(), PlanOptions(max_unused=0, max_repack_size=20 * MiB),
     [], ["b"], [], [], []),
    ("unindexed, not pending: marked", {}, {"x": 5 * MiB, "y": 1 * MiB}, {"y"}, PlanOptions(),
     [], [], ["x"], [], []),
    ("indexed but missing, unused: dropped", {"m": st(2, MiB, 0, 0)}, {}, set(), PlanOptions(),
     [], [], [], ["m"], []),
    ("indexed but missing, used: damage", {"m": st(2, MiB, 1, 10)}, {}, set(), PlanOptions(),
     [], [], [], [], ["m"]),
    ("recompress takes full data packs, not tree packs",
     {"d": st(4, 16 * MiB, 4, 16 * MiB), "t": st(4, MiB, 4, MiB, TREE)}, {"d": 16 * MiB, "t": MiB}, set(),
     PlanOptions(recompress=True), [], ["d"], [], [], []),
    ("recompress within the cap", {"d": st(4, 16 * MiB, 4, 16 * MiB), "e": st(4, 16 * MiB, 4, 16 * MiB)},
     {"d": 16 * MiB, "e": 16 * MiB}, set(), PlanOptions(recompress=True, max_repack_size=20 * MiB),
     [], ["d"], [], [], []),
    ("must go (purge): repacked although within 5%",
     {"a": st(100, 100 * MiB, 99, 99 * MiB), "b": st(100, 100 * MiB, 99, 99 * MiB)},
     {"a": 100 * MiB, "b": 100 * MiB}, set(), PlanOptions(must_go=frozenset({"b"})), [], ["b"], [], [], []),
    ("must go (purge): beyond the repack size cap and with unlimited unused",
     {"a": st(4, 32 * MiB, 3, 31 * MiB)}, {"a": 32 * MiB}, set(),
     PlanOptions(max_unused=None, max_repack_size=MiB, must_go=frozenset({"a"})), [], ["a"], [], [], []),
    ("must go (purge): a pack with nothing used is deleted as usual",
     {"a": st(4, 16 * MiB, 0, 0)}, {"a": 16 * MiB}, set(), PlanOptions(must_go=frozenset({"a"})),
     ["a"], [], [], [], []),
]  # fmt: skip


@pytest.mark.parametrize(
    "usage, stored, pending, opts, delete, repack, unindexed, drop, damaged",
    [c[1:] for c in CASES], ids=[c[0] for c in CASES],
)  # fmt: skip
def test_plan(
    usage: dict[str, PackStat], stored: dict[str, int], pending: set[str], opts: PlanOptions,
    delete: list[str], repack: list[str], unindexed: list[str], drop: list[str], damaged: list[str],
) -> None:  # fmt: skip
    plan = plan_prune(usage, stored, pending, opts)
    assert plan.delete == delete
    assert plan.repack == repack
    assert plan.unindexed == unindexed
    assert plan.drop_missing == drop
    assert plan.damaged_missing == damaged
    assert sorted(plan.doomed) == sorted(delete + repack + unindexed)


def test_tallies_add_up() -> None:
    usage = {"a": st(4, 16 * MiB, 2, 8 * MiB), "b": st(4, 16 * MiB, 4, 16 * MiB), "c": st(3, 9, 0, 0)}
    stored = {"a": 16 * MiB + 100, "b": 16 * MiB + 100, "c": 50, "u": 7}
    plan = plan_prune(usage, stored, set(), PlanOptions())
    assert (plan.keep.packs, plan.keep.blobs, plan.keep.bytes) == (1, 4, 16 * MiB + 100)
    assert (plan.repacked.packs, plan.repacked.blobs, plan.repacked.bytes) == (1, 2, 8 * MiB)
    assert (plan.deleted.packs, plan.deleted.blobs, plan.deleted.bytes) == (2, 3, 57)
    assert plan.unused_after == 0


@pytest.mark.parametrize("text, expected", [
    ("0", 0), ("512", 512), ("64k", 64 << 10), ("64K", 64 << 10), ("1.5M", 3 << 19), ("2G", 2 << 30),
    ("1T", 1 << 40), ("2GiB", 2 << 30), ("3 MB", 3 << 20),
])  # fmt: skip
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "x", "-1", "5%", "1P", "1.2.3"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_size(text)


@pytest.mark.parametrize("text, pct, absolute", [
    ("5%", 5.0, None), ("0%", 0.0, None), ("100%", 100.0, None), ("unlimited", None, None),
    ("Unlimited", None, None), ("1G", None, 1 << 30),
])  # fmt: skip
def test_parse_max_unused(text: str, pct: float | None, absolute: int | None) -> None:
    opts = parse_max_unused(text)
    assert (opts.max_unused, opts.max_unused_bytes) == (pct, absolute)


@pytest.mark.parametrize("text", ["101%", "-5%", "abc%", "lots"])
def test_parse_max_unused_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_max_unused(text)


def test_limit_is_relative_to_used_after_prune() -> None:
    # 95 MiB used, 5 MiB unused = exactly 5% of the total: tolerated
    usage = {"a": st(100, 100 * MiB, 95, 95 * MiB)}
    assert plan_prune(usage, {"a": 100 * MiB}, set(), PlanOptions()).repack == []
    usage = {"a": st(100, 100 * MiB, 94, 94 * MiB)}
    assert plan_prune(usage, {"a": 100 * MiB}, set(), PlanOptions()).repack == ["a"]
