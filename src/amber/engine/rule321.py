"""The 3-2-1-1-0 rule for one snapshot's copies. Pure, no I/O.

3 copies, on 2 kinds of media, 1 offsite, 1 immutable or offline (air-gapped),
0 verification errors. Copies are backup repositories; the live data is not
counted. A copy that has not been verified cannot prove "0 errors", so it
fails that part of the rule until a check has run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Replica:
    """Where a copy lives: a repository and what kind of place it is."""

    name: str
    kind: str = "disk"  # disk | usb | ssd | nas | cloud
    offsite: bool = False
    immutable: bool = False  # e.g. S3 Object Lock, append-only
    offline: bool = False  # disconnected between runs (a USB disk in a drawer)


@dataclass(frozen=True)
class CopyFacts:
    replica: Replica
    errors: int | None = None  # verification errors affecting this copy; None = never verified


@dataclass(frozen=True)
class Rule:
    copies: int = 3
    media: int = 2
    offsite: int = 1
    immutable_or_offline: int = 1
    errors: int = 0


@dataclass
class Verdict:
    copies: int
    media: list[str]
    offsite: int
    immutable_or_offline: int
    errors: int
    unverified: int
    missing: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.missing


def _n(count: int, one: str, many: str = "") -> str:
    return f"{count} {one}" if count == 1 else f"{count} {many or one + 's'}"


def evaluate(facts: Sequence[CopyFacts], rule: Rule | None = None) -> Verdict:
    """Count one snapshot's copies against ``rule``; ``missing`` says what to add or fix."""
    rule = rule or Rule()
    by_repo = {f.replica.name: f for f in facts}  # one copy per repository
    copies = list(by_repo.values())
    media = sorted({f.replica.kind for f in copies})
    offsite = sum(f.replica.offsite for f in copies)
    guarded = sum(f.replica.immutable or f.replica.offline for f in copies)
    errors = sum(f.errors or 0 for f in copies)
    unverified = sum(f.errors is None for f in copies)
    v = Verdict(len(copies), media, offsite, guarded, errors, unverified)
    if len(copies) < rule.copies:
        v.missing.append(_n(rule.copies - len(copies), "more copy", "more copies"))
    if len(media) < rule.media:
        have = ", ".join(media) or "none"
        v.missing.append(f"{_n(rule.media - len(media), 'more media type')} (have: {have})")
    if offsite < rule.offsite:
        v.missing.append(_n(rule.offsite - offsite, "offsite copy", "offsite copies"))
    if guarded < rule.immutable_or_offline:
        short = rule.immutable_or_offline - guarded
        v.missing.append(_n(short, "immutable or offline copy", "immutable or offline copies"))
    if errors > rule.errors:
        v.missing.append(f"fix {_n(errors, 'verification error')}")
    if unverified:
        v.missing.append("verify " + _n(unverified, "unchecked copy", "unchecked copies"))
    return v
