"""The pure scoring core: table-driven verdicts and properties."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amber.anomaly.scoring import SUSPICIOUS, Thresholds, assess, reasons
from amber.engine.changefacts import ChangeFacts


def facts(
    before: int = 1000, rewritten: int = 0, renamed: int = 0, deleted: int = 0, jumps: int = 0,
    magic: int = 0, notes: int = 0, ext: str = ".locked", parent: bool = True,
) -> ChangeFacts:  # fmt: skip
    return ChangeFacts(
        has_parent=parent, files_before=before, files_rewritten=rewritten, files_renamed=renamed,
        files_deleted=deleted, entropy_jumps=jumps, magic_mismatches=magic, ransom_notes=notes,
        new_extensions=Counter({ext: renamed}) if renamed else Counter(),
    )  # fmt: skip


T = Thresholds()
CASES = [
    # (facts, suspicious?) -- why
    (facts(rewritten=400, jumps=380), True),  # 40% encrypted in place
    (facts(renamed=400, jumps=390, notes=20), True),  # encrypted, renamed, notes
    (facts(renamed=150), True),  # 15% renamed to one extension, content unknown
    (facts(rewritten=900), False),  # a big update: rewritten but still structured
    (facts(rewritten=100, jumps=100), False),  # 10% randomised: below changed_share
    (facts(before=30, rewritten=15, jumps=15), False),  # a small tree: under min_files
    (facts(deleted=600), False),  # a cleanup: deletions alone
    (facts(before=500, deleted=500), True),  # every file gone
    (facts(notes=10), False),  # notes alone
    (facts(rewritten=400, jumps=380, parent=False), False),  # no parent: nothing to compare
    (facts(before=0), False),
]


@pytest.mark.parametrize(("f", "suspicious"), CASES)
def test_verdicts(f: ChangeFacts, suspicious: bool) -> None:
    assert bool(reasons(f, T)) is suspicious
    verdict = assess(f, T)
    assert (verdict.verdict == SUSPICIOUS) is suspicious
    assert verdict.counts["files_before"] == f.files_before


def test_renames_spread_over_many_extensions_are_not_one_attack() -> None:
    f = facts(renamed=150)
    f.new_extensions = Counter({f".e{i}": 10 for i in range(15)})
    assert reasons(f, T) == []


def test_disabled_never_flags() -> None:
    assert reasons(facts(rewritten=900, jumps=900, notes=50), Thresholds(enabled=False)) == []


counts = st.integers(0, 5000)


@given(before=st.integers(1, 5000), rewritten=counts, renamed=counts, jumps=counts, extra=st.integers(1, 500))
def test_more_randomised_files_never_clears_a_verdict(
    before: int, rewritten: int, renamed: int, jumps: int, extra: int
) -> None:
    low = facts(before=before, rewritten=rewritten, renamed=renamed, jumps=jumps)
    high = facts(before=before, rewritten=rewritten, renamed=renamed, jumps=jumps + extra)
    if reasons(low, T):
        assert reasons(high, T)


@given(before=st.integers(1, 5000), rewritten=counts, deleted=counts)
def test_structured_rewrites_are_never_suspicious(before: int, rewritten: int, deleted: int) -> None:
    deleted = min(deleted, before - 1)  # not every file gone
    assert reasons(facts(before=before, rewritten=rewritten, deleted=deleted), T) == []


@given(share=st.floats(0.2, 1.0), before=st.integers(100, 100_000))
def test_most_files_encrypted_in_place_is_always_flagged(share: float, before: int) -> None:
    n = max(math.ceil(before * share), T.min_files)
    assert reasons(facts(before=before, rewritten=n, jumps=n), T)
