"""Is a job protected right now? ``protected``, ``at-risk`` or ``unprotected``, with reasons.

Pure: the caller gathers the facts (state database, drill history, copies,
usage samples) into :class:`JobFacts`; :func:`judge` applies :class:`Policy`.
Every rule that is not met adds a reason; the verdict is the worst level any
reason carries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from amber.ops.reports.forecast import Forecast

PROTECTED, AT_RISK, UNPROTECTED = "protected", "at-risk", "unprotected"
_RANK = {PROTECTED: 0, AT_RISK: 1, UNPROTECTED: 2}
HOUR, DAY = 3600.0, 86400.0


@dataclass(frozen=True)
class Policy:
    rpo_grace: float = 1.5  # a backup is late after grace x its schedule interval
    rpo_lost: float = 3.0  # ... and the job unprotected after lost x the interval
    default_interval: float = DAY  # jobs without a schedule are expected daily
    verify_max_age: float = 7 * DAY
    drill_max_age: float = 31 * DAY
    fill_warn: float = 0.85
    fill_critical: float = 0.97
    full_warn_days: float = 30.0
    full_critical_days: float = 3.0


@dataclass(frozen=True)
class Outcome:
    """When something last happened and whether it went well."""

    when: float
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class CopiesFacts:
    passed: bool  # the newest snapshot meets 3-2-1-1-0
    missing: tuple[str, ...] = ()
    errors: int = 0  # verification errors on its copies


@dataclass(frozen=True)
class DestinationFill:
    name: str
    fill: float | None  # used / total, None = capacity unknown
    forecast: Forecast | None = None


@dataclass(frozen=True)
class Suspicion:
    """A snapshot the ransomware check tagged suspicious (docs/design.md §12b)."""

    snapshot: str  # its ID
    when: float  # when the run that wrote it started
    reasons: tuple[str, ...] = ()
    acknowledged: bool = False  # `amber anomaly ack` reviewed it


@dataclass(frozen=True)
class JobFacts:
    job: str
    now: float
    last_success: float | None = None  # when the last successful backup started
    last_status: str | None = None  # the newest finished run's status
    interval: float | None = None  # seconds between scheduled runs; None = no schedule
    verification: Outcome | None = None
    drill: Outcome | None = None
    copies: CopiesFacts | None = None  # None = not known
    destinations: Sequence[DestinationFill] = ()
    anomalies: Sequence[Suspicion] = ()  # suspicious snapshots among the recent runs


@dataclass(frozen=True)
class Reason:
    level: str  # at-risk | unprotected
    text: str


@dataclass(frozen=True)
class JobVerdict:
    job: str
    verdict: str
    reasons: tuple[Reason, ...] = field(default=())

    @property
    def texts(self) -> list[str]:
        return [r.text for r in self.reasons]


def judge(facts: JobFacts, policy: Policy | None = None) -> JobVerdict:
    policy = policy or Policy()
    reasons = [
        *_recency(facts, policy),
        *_verification(facts, policy),
        *_drill(facts, policy),
        *_copies(facts),
        *_anomalies(facts),
        *(r for d in facts.destinations for r in _capacity(d, policy)),
    ]
    worst = max((r.level for r in reasons), key=_RANK.__getitem__, default=PROTECTED)
    return JobVerdict(facts.job, worst, tuple(reasons))


def age_text(seconds: float) -> str:
    if seconds < 2 * HOUR:
        return f"{max(0, round(seconds / 60))} min"
    if seconds < 2 * DAY:
        return f"{round(seconds / HOUR)} h"
    return f"{round(seconds / DAY)} days"


def _recency(f: JobFacts, p: Policy) -> list[Reason]:
    out = []
    if f.last_status in ("failed", "partial", "interrupted"):
        out.append(Reason(AT_RISK, f"the last run {'was ' if f.last_status == 'interrupted' else ''}"
                                   f"{f.last_status}"))  # fmt: skip
    if f.last_success is None:
        return [*out, Reason(UNPROTECTED, "no successful backup yet")]
    interval = f.interval or p.default_interval
    age = f.now - f.last_success
    expected = "its schedule" if f.interval else "the default daily schedule"
    if age > p.rpo_lost * interval:
        out.append(Reason(UNPROTECTED, f"last successful backup {age_text(age)} ago; "
                                       f"{expected} allows {age_text(p.rpo_grace * interval)}"))  # fmt: skip
    elif age > p.rpo_grace * interval:
        out.append(Reason(AT_RISK, f"last successful backup {age_text(age)} ago; "
                                   f"{expected} allows {age_text(p.rpo_grace * interval)}"))  # fmt: skip
    return out


def _verification(f: JobFacts, p: Policy) -> list[Reason]:
    v = f.verification
    if v is None:
        return [Reason(AT_RISK, "never verified")]
    if not v.ok:
        return [Reason(UNPROTECTED, f"the last verification found errors{_detail(v)}")]
    if f.now - v.when > p.verify_max_age:
        return [Reason(AT_RISK, f"last verified {age_text(f.now - v.when)} ago")]
    return []


def _drill(f: JobFacts, p: Policy) -> list[Reason]:
    d = f.drill
    if d is None:
        return [Reason(AT_RISK, "never restore-drilled")]
    if not d.ok:
        return [Reason(AT_RISK, f"the last restore drill failed{_detail(d)}")]
    if f.now - d.when > p.drill_max_age:
        return [Reason(AT_RISK, f"last restore drill {age_text(f.now - d.when)} ago")]
    return []


def _copies(f: JobFacts) -> list[Reason]:
    c = f.copies
    if c is None or c.passed:
        return []
    if c.errors:
        return [Reason(UNPROTECTED, f"copies have {c.errors} verification error(s)")]
    return [Reason(AT_RISK, "3-2-1-1-0 not met: " + "; ".join(c.missing))]


def _anomalies(f: JobFacts) -> list[Reason]:
    out = []
    for s in f.anomalies:
        if s.acknowledged:
            continue
        why = f": {s.reasons[0]}" if s.reasons else ""
        short = s.snapshot[:8]
        out.append(Reason(AT_RISK, f"snapshot {short} ({age_text(f.now - s.when)} ago) tagged suspicious"
                                   f"{why}; review it, then `amber anomaly ack {short}`"))  # fmt: skip
    return out


def _capacity(d: DestinationFill, p: Policy) -> list[Reason]:
    out = []
    if d.fill is not None and d.fill >= p.fill_critical:
        out.append(Reason(UNPROTECTED, f"{d.name} is {d.fill:.0%} full"))
    elif d.fill is not None and d.fill >= p.fill_warn:
        out.append(Reason(AT_RISK, f"{d.name} is {d.fill:.0%} full"))
    days = d.forecast.days_until_full if d.forecast else None
    if days is not None and days <= p.full_critical_days:
        out.append(Reason(UNPROTECTED, f"{d.name} {d.forecast.describe() if d.forecast else ''}"))
    elif days is not None and days <= p.full_warn_days:
        out.append(Reason(AT_RISK, f"{d.name} {d.forecast.describe() if d.forecast else ''}"))
    return out


def _detail(o: Outcome) -> str:
    return f" ({o.detail})" if o.detail else ""
