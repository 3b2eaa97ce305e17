"""The ransomware hold on retention: table-driven."""

from __future__ import annotations

import datetime as dt

import pytest

from amber.engine.retention import GroupKey, GroupResult, SnapshotRecord
from amber.engine.retention_hold import ACKED_TAG, SUSPICIOUS_TAG, apply_holds, holds

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def snaps(spec: str, host: str = "h") -> list[SnapshotRecord]:
    """One letter per day, oldest first: c clean, s suspicious, a suspicious and acknowledged."""
    tags = {"c": (), "s": (SUSPICIOUS_TAG,), "a": (SUSPICIOUS_TAG, ACKED_TAG)}
    return [SnapshotRecord(f"{host}{i}", T0 + dt.timedelta(days=i), host, ("/p",), tags[c])
            for i, c in enumerate(spec)]  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "clean", "held"),
    [
        ("cccs", 1, {2}),
        ("cccs", 2, {1, 2}),
        ("cccs", 0, set()),
        ("ccca", 1, set()),  # acknowledged: no hold
        ("ccsss", 1, {1}),  # several suspicious in a row hold the same clean one
        ("cscs", 1, {0, 2}),
        ("scc", 1, set()),  # nothing clean before it
        ("cccsc", 2, {1, 2}),  # a clean snapshot after it is not held
        ("", 1, set()),
    ],
)
def test_holds(spec: str, clean: int, held: set[int]) -> None:
    assert set(holds(snaps(spec), clean)) == {f"h{i}" for i in held}


def test_holds_are_per_host_and_paths() -> None:
    found = holds([*snaps("ccs", "a"), *snaps("ccc", "b")], 1)
    assert set(found) == {"a1"}
    assert "suspicious a2" in found["a1"] and "amber anomaly ack" in found["a1"]


def test_apply_moves_held_snapshots_to_keep_with_the_reason() -> None:
    s = snaps("cccs")
    key = GroupKey("h", ("/p",), None)
    g = GroupResult(key, keep=[s[3]], remove=[s[2], s[1], s[0]], reasons={"h3": ["last"]})
    apply_holds([g], holds(s, 1))
    assert [x.id for x in g.keep] == ["h3", "h2"] and [x.id for x in g.remove] == ["h1", "h0"]
    assert g.reasons["h2"][0].startswith("held:")
