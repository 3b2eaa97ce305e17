"""When to alert, whom, and with what words. Pure: no clock, no network, no files.

Targets filter by event kind and job. Deliveries are deduplicated and rate
limited per (target, event, job): inside ``min_interval`` of the last message
for that key nothing is sent, except that an integrity event with a new
message goes out at once. A success clears the failure and partial keys of its
job, so the next failure is reported immediately.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

KINDS = ("failure", "partial", "integrity", "anomaly", "success", "capacity", "stale", "summary", "test")
_PROBLEMS = ("failure", "partial", "integrity", "anomaly", "capacity", "stale")
_SEVERITY = {"failure": "failure", "integrity": "failure", "anomaly": "failure", "partial": "warning",
             "capacity": "warning",
             "stale": "warning", "success": "success", "summary": "info", "test": "info"}  # fmt: skip


@dataclass(frozen=True)
class Event:
    kind: str  # one of KINDS
    job: str = ""  # "" when not about one job
    message: str = ""
    repository: str = ""  # destination name or location
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        text = f"{self.kind}\0{self.job}\0{self.repository}\0{self.message}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def severity(self) -> str:
        return _SEVERITY.get(self.kind, "info")


class TargetRule(Protocol):
    """The part of a notify target the policy needs (``config.NotifyConfig`` fits)."""

    @property
    def url(self) -> str: ...

    @property
    def events(self) -> Sequence[str]: ...

    @property
    def min_interval_seconds(self) -> float: ...

    @property
    def jobs(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class Sent:
    """What the dedup table remembers for one (target, event, job)."""

    at: float  # unix time of the last delivered message
    fingerprint: str
    suppressed: int = 0  # messages held back since


def target_id(url: str) -> str:
    """A stable key for a target that does not store its URL (which may hold credentials)."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def dedup_key(url: str, event: Event) -> tuple[str, str, str]:
    return target_id(url), event.kind, event.job


def wants(target: TargetRule, event: Event) -> bool:
    if event.kind == "test":
        return True
    if event.kind not in target.events:
        return False
    return not target.jobs or not event.job or event.job in target.jobs


def should_send(last: Sent | None, event: Event, now: float, min_interval: float) -> bool:
    if last is None or event.kind == "test":
        return True
    if event.kind == "integrity" and last.fingerprint != event.fingerprint:
        return True
    return now - last.at >= min_interval


def cleared_by(event: Event) -> tuple[str, ...]:
    """Event kinds whose dedup state this event resets (for its job)."""
    if event.kind == "success":
        return ("failure", "partial", "stale")
    return ()


def render(event: Event, suppressed: int = 0, host: str = "") -> tuple[str, str]:
    """(title, body) of a message."""
    subject = f"job {event.job}" if event.job else "amber"
    where = f" on {host}" if host else ""
    title = {
        "failure": f"amber: backup FAILED ({subject}){where}",
        "partial": f"amber: backup partial ({subject}){where}",
        "integrity": f"amber: INTEGRITY ERROR ({subject}){where}",
        "anomaly": f"amber: SUSPICIOUS BACKUP, possible ransomware ({subject}){where}",
        "capacity": f"amber: storage almost full ({event.repository or subject}){where}",
        "stale": f"amber: no successful backup ({subject}){where}",
        "success": f"amber: backup ok ({subject}){where}",
        "summary": f"amber: daily summary{where}",
        "test": f"amber: test notification{where}",
    }.get(event.kind, f"amber: {event.kind} ({subject}){where}")
    lines = [event.message or title]
    if event.repository:
        lines.append(f"repository: {event.repository}")
    for key in sorted(event.details):
        lines.append(f"{key}: {event.details[key]}")
    if suppressed:
        lines.append(f"({suppressed} similar alert(s) suppressed since the last message)")
    return title, "\n".join(lines)


# -- derived problems ---------------------------------------------------------
def capacity_event(name: str, total: int, used: int, threshold: float) -> Event | None:
    """An event when ``used/total`` is at or above ``threshold`` percent."""
    if total <= 0:
        return None
    percent = 100.0 * used / total
    if percent < threshold:
        return None
    return Event(
        "capacity", repository=name,
        message=f"destination {name} is {percent:.1f}% full (threshold {threshold:g}%)",
        details={"used_bytes": used, "total_bytes": total, "percent": round(percent, 1)},
    )  # fmt: skip


def stale_events(
    last_success: Mapping[str, dt.datetime | None], now: dt.datetime, hours: float
) -> list[Event]:
    """Dead man's switch: jobs without a successful backup in the last ``hours``."""
    events = []
    for job, when in sorted(last_success.items()):
        if when is None:
            events.append(Event("stale", job, f"job {job} has never completed a successful backup"))
            continue
        age = (now - when).total_seconds() / 3600
        if age >= hours:
            events.append(Event(
                "stale", job, f"no successful backup of job {job} for {age:.1f} hours (limit {hours:g})",
                details={"last_success": when.isoformat(timespec="seconds")},
            ))  # fmt: skip
    return events


def ping_url(base: str, phase: str, job: str = "") -> str:
    """Healthchecks.io-style: ``base/start``, ``base`` (success), ``base/fail``; ``{job}`` is substituted."""
    url = base.replace("{job}", job).rstrip("/")
    return {"start": f"{url}/start", "success": url, "fail": f"{url}/fail"}[phase]


def is_problem(kind: str) -> bool:
    return kind in _PROBLEMS


def select_targets(targets: Iterable[TargetRule], event: Event) -> list[TargetRule]:
    return [t for t in targets if wants(t, event)]
