"""The report document: what every format shows, built once from a report's data. Pure.

Each report (daily, weekly, monthly) turns its data into a :class:`Document`:
a title, the subject line, and sections of tables, charts and bullet items.
The text, HTML, email and PDF renderings (``render``) only lay it out, so every
format carries the same content. :func:`protection_section` is the part every
report shares: each job's verdict with its reasons, last backup, verification,
drill, 3-2-1-1-0 copies, destination fill and forecast, and suspicious snapshots.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from amber.ops.verdict import JobFacts, JobVerdict, age_text
from amber.redact import redact

# Tones a cell can carry; the HTML colours them, the text ignores them.
GOOD, WARN, BAD, NEUTRAL = "good", "warn", "bad", ""
TONES = {"protected": GOOD, "success": GOOD, "ok": GOOD, "yes": GOOD, "passed": GOOD,
         "at-risk": WARN, "partial": WARN, "missed": WARN, "interrupted": BAD, "no": WARN,
         "unprotected": BAD, "failed": BAD}  # fmt: skip


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[int, ...] = ()  # right-aligned column indexes
    toned: tuple[int, ...] = ()  # columns whose words (success, at-risk ...) get a colour


@dataclass(frozen=True)
class Series:
    name: str
    values: tuple[float, ...]


@dataclass(frozen=True)
class Chart:
    title: str
    kind: str  # "bars" (grouped, one group per label) | "line" (one point per label)
    labels: tuple[str, ...]
    series: tuple[Series, ...]
    unit: str = ""  # "bytes", "s" or "": how values are printed


@dataclass(frozen=True)
class Section:
    title: str
    tables: tuple[Table, ...] = ()
    charts: tuple[Chart, ...] = ()
    items: tuple[str, ...] = ()  # bullet lines
    empty: str = ""  # said when the section has nothing else


@dataclass(frozen=True)
class Document:
    kind: str  # daily | weekly | monthly
    title: str
    period: str
    subject: str  # the counts line; a mail's subject
    sections: tuple[Section, ...]
    host: str = ""
    data: dict[str, Any] = field(default_factory=dict, compare=False)  # the JSON form


def when(ts: float | None) -> str:
    return "-" if ts is None else dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def size(n: float | None) -> str:
    if n is None:
        return "-"
    value, sign = abs(float(n)), "-" if n < 0 else ""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{sign}{value:.0f} {unit}" if unit == "B" else f"{sign}{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def seconds(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 120:
        return f"{s:.1f} s"
    return f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def percent(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def counts_text(counts: dict[str, int]) -> str:
    """ "5 ok, 1 partial, 0 failed", with missed only when there are some."""
    text = f"{counts.get('ok', 0)} ok, {counts.get('partial', 0)} partial, {counts.get('failed', 0)} failed"
    return text + (f", {counts['missed']} missed" if counts.get("missed") else "")


def status_counts(statuses: Sequence[str]) -> dict[str, int]:
    found = {"ok": 0, "partial": 0, "failed": 0}
    for s in statuses:
        key = {"success": "ok", "interrupted": "failed"}.get(s, s)
        if key in found:
            found[key] += 1
    return found


@dataclass(frozen=True)
class Protection:
    """One job's verdict and the facts behind it, as the reports show them."""

    job: str
    verdict: str
    reasons: tuple[str, ...]
    last_success: float | None
    last_status: str | None
    verified: str  # "2026-01-02 03:04 ok" / "never"
    drilled: str
    copies: str  # "3-2-1-1-0 met" / "not met: ..." / "unknown"
    destinations: tuple[str, ...]  # "main 42% full, full in 90 days"
    suspicious: int  # unacknowledged suspicious snapshots

    def as_dict(self) -> dict[str, Any]:
        return {"job": self.job, "verdict": self.verdict, "reasons": list(self.reasons),
                "last_success": self.last_success, "last_status": self.last_status, "verified": self.verified,
                "drilled": self.drilled, "copies": self.copies, "destinations": list(self.destinations),
                "suspicious": self.suspicious}  # fmt: skip


def protection(verdict: JobVerdict, facts: JobFacts) -> Protection:
    def outcome(o: Any) -> str:
        return "never" if o is None else f"{when(o.when)} {'ok' if o.ok else 'failed'}"

    c = facts.copies
    copies = "unknown" if c is None else "3-2-1-1-0 met" if c.passed else "3-2-1-1-0 not met"
    places = []
    for d in facts.destinations:
        fill = "fill unknown" if d.fill is None else f"{d.fill:.0%} full"
        places.append(f"{d.name}: {fill}" + (f", {d.forecast.describe()}" if d.forecast else ""))
    return Protection(
        facts.job, verdict.verdict, tuple(redact(t) for t in verdict.texts), facts.last_success,
        facts.last_status, outcome(facts.verification), outcome(facts.drill), copies, tuple(places),
        sum(not s.acknowledged for s in facts.anomalies),
    )  # fmt: skip


def protection_section(lines: Sequence[Protection], now: float) -> Section:
    rows = []
    for p in lines:
        age = "never" if p.last_success is None else f"{age_text(now - p.last_success)} ago"
        rows.append((p.job, p.verdict, age, p.verified, p.drilled, p.copies, "; ".join(p.destinations) or "-",
                     str(p.suspicious)))  # fmt: skip
    table = Table(("job", "verdict", "last backup", "verified", "drilled", "copies", "destinations",
                   "suspicious"), tuple(rows), numeric=(7,), toned=(1,))  # fmt: skip
    items = tuple(f"{p.job}: {reason}" for p in lines for reason in p.reasons)
    return Section("Protection now", (table,) if rows else (), items=items, empty="no jobs configured")


def verdict_counts(lines: Sequence[Protection]) -> str:
    at_risk = sum(p.verdict == "at-risk" for p in lines)
    bad = sum(p.verdict == "unprotected" for p in lines)
    return ", ".join(x for x in (f"{bad} unprotected" if bad else "", f"{at_risk} at-risk" if at_risk else "")
                     if x)  # fmt: skip


class PeriodReport(Protocol):
    """What daily, weekly and monthly reports share."""

    start: float
    end: float
    protection: list[Protection]

    def as_dict(self) -> dict[str, Any]: ...


def period_document(kind: str, report: PeriodReport, subject: str, sections: tuple[Section, ...],
                    host: str) -> Document:  # fmt: skip
    """A report's document: its title and period, the subject with the verdict counts added."""
    at_risk = verdict_counts(report.protection)
    period = f"{when(report.start)} - {when(report.end)}"
    subject += f"; {at_risk}" if at_risk else ""
    return Document(kind, f"amber {kind} report", period, subject, sections, host, report.as_dict())
