"""The protection verdict: one row per rule, each could fail."""

from __future__ import annotations

import pytest

from amber.ops.reports.forecast import Forecast
from amber.ops.verdict import (
    AT_RISK,
    DAY,
    PROTECTED,
    UNPROTECTED,
    CopiesFacts,
    DestinationFill,
    JobFacts,
    Outcome,
    Suspicion,
    judge,
)  # fmt: skip

NOW = 1000 * DAY
FRESH = {
    "last_success": NOW - 3600, "last_status": "success", "interval": DAY,
    "verification": Outcome(NOW - DAY, True), "drill": Outcome(NOW - 2 * DAY, True),
    "copies": CopiesFacts(True), "destinations": (DestinationFill("main", 0.5),),
}  # fmt: skip


def facts(**change: object) -> JobFacts:
    return JobFacts("job", NOW, **{**FRESH, **change})  # type: ignore[arg-type]


CASES = [
    ("all fresh", {}, PROTECTED, ""),
    ("never backed up", {"last_success": None, "last_status": None}, UNPROTECTED, "no successful backup"),
    ("late within lost", {"last_success": NOW - 2 * DAY}, AT_RISK, "2 days ago"),
    ("very late", {"last_success": NOW - 4 * DAY}, UNPROTECTED, "4 days ago"),
    ("hourly schedule late", {"interval": 3600.0, "last_success": NOW - 3 * 3600}, AT_RISK, "allows 90 min"),
    ("no schedule: daily", {"interval": None, "last_success": NOW - 2 * DAY}, AT_RISK, "default daily"),
    ("last run failed", {"last_status": "failed"}, AT_RISK, "the last run failed"),
    ("never verified", {"verification": None}, AT_RISK, "never verified"),
    ("verification errors", {"verification": Outcome(NOW, False, "3 errors")}, UNPROTECTED, "3 errors"),
    ("verification old", {"verification": Outcome(NOW - 10 * DAY, True)}, AT_RISK, "last verified 10 days"),
    ("never drilled", {"drill": None}, AT_RISK, "never restore-drilled"),
    ("drill failed", {"drill": Outcome(NOW, False)}, AT_RISK, "drill failed"),
    ("drill old", {"drill": Outcome(NOW - 40 * DAY, True)}, AT_RISK, "40 days ago"),
    ("copies short", {"copies": CopiesFacts(False, ("1 more copy",))}, AT_RISK, "3-2-1-1-0 not met: 1 more"),
    ("copies damaged", {"copies": CopiesFacts(False, ("errors",), 2)}, UNPROTECTED, "2 verification"),
    ("copies unknown", {"copies": None}, PROTECTED, ""),
    ("nearly full", {"destinations": (DestinationFill("main", 0.9),)}, AT_RISK, "main is 90% full"),
    ("full", {"destinations": (DestinationFill("main", 0.99),)}, UNPROTECTED, "main is 99% full"),
    ("fills in 10 days", {"destinations": (DestinationFill("m", 0.5, Forecast(9, 1.0, 1.0, 10.5)),)},
     AT_RISK, "m full in 10 days"),
    ("fills tomorrow", {"destinations": (DestinationFill("m", 0.5, Forecast(9, 1.0, 1.0, 1.0)),)},
     UNPROTECTED, "m full in 1 day"),
    ("suspicious snapshot",
     {"anomalies": (Suspicion("abcdef0123", NOW - 3600, ("40 of 50 files renamed",)),)},
     AT_RISK, "snapshot abcdef01 (60 min ago) tagged suspicious: 40 of 50 files renamed"),
    ("suspicious: ack hint", {"anomalies": (Suspicion("abcdef0123", NOW - DAY),)},
     AT_RISK, "`amber anomaly ack abcdef01`"),
    ("suspicious, acknowledged", {"anomalies": (Suspicion("abcdef0123", NOW, (), True),)}, PROTECTED, ""),
    ("fills in a year", {"destinations": (DestinationFill("m", 0.5, Forecast(9, 1.0, 1.0, 365.0)),)},
     PROTECTED, ""),
]  # fmt: skip


@pytest.mark.parametrize(("name", "change", "verdict", "reason"), CASES, ids=[c[0] for c in CASES])
def test_verdict(name: str, change: dict[str, object], verdict: str, reason: str) -> None:
    result = judge(facts(**change))
    assert result.verdict == verdict, result.reasons
    if reason:
        assert any(reason in text for text in result.texts), result.texts
    else:
        assert result.reasons == ()


def test_worst_reason_wins_and_all_are_listed() -> None:
    result = judge(facts(verification=None, last_success=None))
    assert result.verdict == UNPROTECTED
    assert {r.level for r in result.reasons} == {AT_RISK, UNPROTECTED}
    assert len(result.reasons) == 2


def test_every_unacknowledged_suspicious_snapshot_is_a_reason() -> None:
    flagged = (Suspicion("aaaa1111", NOW - DAY), Suspicion("bbbb2222", NOW, (), True),
               Suspicion("cccc3333", NOW))  # fmt: skip
    result = judge(facts(anomalies=flagged))
    assert result.verdict == AT_RISK
    assert [t[:17] for t in result.texts] == ["snapshot aaaa1111", "snapshot cccc3333"]
