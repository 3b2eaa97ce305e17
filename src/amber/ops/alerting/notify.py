"""Delivering alerts through apprise, with dedup and rate limits kept in the state database.

The policy (who gets what, and when to hold back) is in :mod:`alert_policy`;
this module does the I/O: apprise deliveries, the ``notify_sent`` table,
healthchecks-style pings and the capacity probe of local destinations.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import shutil
import socket
import sqlite3
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amber.errors import StateError, UsageError
from amber.events import RunEvent, Subscriber
from amber.ops.alerting import policy as alert_policy
from amber.ops.alerting.policy import Event, Sent, TargetRule
from amber.ops.config.model import Config
from amber.ops.private import private_dir
from amber.ops.state import StateDB, secure_database
from amber.redact import mask_url, redact

_SCHEMA = """
CREATE TABLE IF NOT EXISTS notify_sent (
    target TEXT NOT NULL, kind TEXT NOT NULL, job TEXT NOT NULL,
    fingerprint TEXT NOT NULL, sent_at REAL NOT NULL, suppressed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (target, kind, job)
)"""
_NOTIFY_TYPES = ("info", "success", "warning", "failure")  # apprise.NotifyType values
PING_TIMEOUT = 10.0
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]+:")


@dataclass(frozen=True)
class Delivery:
    target: str  # URL with any password replaced by ***
    outcome: str  # sent | suppressed | failed
    error: str = ""


def shown(url: str) -> str:
    """How a notification or ping URL appears in any output: its tokens masked."""
    return mask_url(url, secret_path=True)


class DedupTable:
    """(target, event, job) -> last delivery, in the state database (or in memory without one)."""

    def __init__(self, db_path: str | None) -> None:
        self._path = db_path or ":memory:"
        self._memory: sqlite3.Connection | None = None

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        try:
            if self._path == ":memory:":
                if self._memory is None:
                    self._memory = sqlite3.connect(":memory:")
                    self._memory.execute(_SCHEMA)
                yield self._memory
                self._memory.commit()
                return
            private_dir(os.path.dirname(os.path.abspath(self._path)))
            secure_database(self._path)
            conn = sqlite3.connect(self._path, timeout=30)
            try:
                conn.execute(_SCHEMA)
                yield conn
                conn.commit()
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise StateError(f"state database {self._path}: {exc}") from exc
        except OSError as exc:
            raise StateError(f"state database {self._path}: {exc.strerror or exc}") from exc

    def get(self, key: tuple[str, str, str]) -> Sent | None:
        with self._db() as db:
            row = db.execute("SELECT sent_at, fingerprint, suppressed FROM notify_sent "
                             "WHERE target=? AND kind=? AND job=?", key).fetchone()  # fmt: skip
        return Sent(float(row[0]), str(row[1]), int(row[2])) if row else None

    def sent(self, key: tuple[str, str, str], at: float, fingerprint: str) -> None:
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO notify_sent VALUES (?, ?, ?, ?, ?, 0)",
                       (*key, fingerprint, at))  # fmt: skip

    def suppressed(self, key: tuple[str, str, str]) -> None:
        with self._db() as db:
            db.execute("UPDATE notify_sent SET suppressed = suppressed + 1 "
                       "WHERE target=? AND kind=? AND job=?", key)  # fmt: skip

    def clear(self, target: str, kinds: Sequence[str], job: str) -> None:
        with self._db() as db:
            db.executemany("DELETE FROM notify_sent WHERE target=? AND kind=? AND job=?",
                           [(target, k, job) for k in kinds])  # fmt: skip


def deliver(url: str, title: str, body: str, severity: str = "info") -> str:
    """Send one message through apprise; returns "" or the reason it failed."""
    import apprise  # slow to import (0.3 s): only when something is sent

    app = apprise.Apprise()
    if not app.add(url):
        return f"not a valid apprise URL: {shown(url)}"
    with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:  # type: ignore[no-untyped-call]
        ok = app.notify(body=body, title=title, notify_type=severity if severity in _NOTIFY_TYPES else "info")
    if ok:
        return ""
    lines = [line.strip() for line in captured.getvalue().splitlines() if line.strip()]
    return redact(lines[-1] if lines else "delivery failed", (url,))


class Notifier:
    """Sends events to the targets that want them, holding back repeats."""

    def __init__(
        self, targets: Sequence[TargetRule], db_path: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.targets = list(targets)
        self.table = DedupTable(db_path)
        self.clock = clock
        self.host = socket.gethostname()

    def send(self, event: Event) -> list[Delivery]:
        results: list[Delivery] = []
        now = self.clock()
        for target in self.targets:
            tid = alert_policy.target_id(target.url)
            if cleared := alert_policy.cleared_by(event):
                self.table.clear(tid, cleared, event.job)
            if not alert_policy.wants(target, event):
                continue
            key = alert_policy.dedup_key(target.url, event)
            last = self.table.get(key)
            if not alert_policy.should_send(last, event, now, target.min_interval_seconds):
                self.table.suppressed(key)
                results.append(Delivery(shown(target.url), "suppressed"))
                continue
            title, body = alert_policy.render(event, last.suppressed if last else 0, self.host)
            error = deliver(target.url, title, body, event.severity)
            if error:
                results.append(Delivery(shown(target.url), "failed", error))
                continue
            self.table.sent(key, now, event.fingerprint)
            results.append(Delivery(shown(target.url), "sent"))
        return results

    def test(self, index: int | None = None) -> list[Delivery]:
        """Send a test message to every target, or to target ``index`` (1-based)."""
        if not self.targets:
            raise UsageError("no notification targets configured ([[notify]] in the config file)")
        chosen = list(enumerate(self.targets, 1))
        if index is not None:
            if not 1 <= index <= len(self.targets):
                raise UsageError(f"no notification target {index} (there are {len(self.targets)})")
            chosen = [chosen[index - 1]]
        event = Event("test", message="This is a test notification from amber.")
        results = []
        for _, target in chosen:
            title, body = alert_policy.render(event, host=self.host)
            error = deliver(target.url, title, body)
            results.append(Delivery(shown(target.url), "failed" if error else "sent", error))
        return results


# -- healthchecks-style pings ---------------------------------------------------
def ping(base: str, phase: str, job: str = "", body: str = "") -> str:
    """GET/POST ``base`` + /start, (success) or /fail; returns "" or a warning. Never raises."""
    if not base:
        return ""
    url = alert_policy.ping_url(base, phase, job)
    request = urllib.request.Request(url, data=body.encode()[:10000] if body else None,
                                     method="POST" if body else "GET")  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=PING_TIMEOUT) as response:
            response.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = redact(str(getattr(exc, "reason", exc)), (url, base))
        return f"ping {shown(url)} failed: {reason}"
    return ""


# -- capacity -------------------------------------------------------------------
def disk_usage(url: str) -> tuple[int, int] | None:
    """(total, used) bytes of a local destination's filesystem; None for remote backends.

    Remote backends are not opened here (that could mean a slow connection just
    to learn nothing); they report no usage yet, so they are skipped.
    """
    if url.startswith("local:"):
        url = url[len("local:") :]
    elif _SCHEME.match(url):
        return None
    path = Path(url).expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent  # a missing repository still lives on some filesystem
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return None
    return usage.total, usage.total - usage.free


def capacity_events(destinations: Sequence[tuple[str, str, float]]) -> list[Event]:
    """Events for (name, url, threshold %) destinations at or above their threshold."""
    events = []
    for name, url, threshold in destinations:
        usage = disk_usage(url)
        if usage is None:
            continue
        event = alert_policy.capacity_event(name, usage[0], usage[1], threshold)
        if event is not None:
            events.append(event)
    return events


# -- wiring: config -> notifier, run events -> alerts and pings --------------------
def notifier_for(config: Config) -> Notifier:
    return Notifier(config.notify, config.state.path)


def destinations(config: Config, names: Sequence[str] | None = None) -> list[tuple[str, str, float]]:
    """(name, url, capacity threshold %) of the configured repositories (or of ``names``)."""
    chosen = config.repositories if names is None else {n: config.repositories[n] for n in names
                                                        if n in config.repositories}  # fmt: skip
    return [(r.name, r.url, float(r.capacity_alert_percent or config.alerts.capacity_percent))
            for r in chosen.values() if not r.offline]  # fmt: skip


class AlertObserver(Subscriber):
    """A subscriber to `amber run`'s events: notifications, healthchecks pings, capacity checks."""

    def __init__(self, config: Config, warn: Callable[[str], None] = lambda _m: None,
                 notifier: Notifier | None = None) -> None:  # fmt: skip
        self.config = config
        self.notifier = notifier or notifier_for(config)
        self.warn = warn

    def run_event(self, event: RunEvent) -> None:
        base = self.config.alerts.healthchecks_url
        if event.kind == "start":
            self.warn(ping(base, "start", event.job))
            return
        if event.kind in ("success", "partial", "failure"):
            self.warn(ping(base, "fail" if event.kind == "failure" else "success", event.job, event.message))
        if event.kind in alert_policy.KINDS:
            self._send(Event(event.kind, event.job, event.message, event.repository,
                             _scalars(event.details)))  # fmt: skip
        if event.kind in ("success", "partial", "failure") and event.job in self.config.jobs:
            job = self.config.jobs[event.job]
            for capacity in capacity_events(destinations(self.config, [job.repository, *job.mirrors])):
                self._send(capacity)

    def _send(self, event: Event) -> None:
        for delivery in self.notifier.send(event):
            if delivery.outcome == "failed":
                self.warn(f"notification to {delivery.target} failed: {delivery.error}")


def _scalars(details: Mapping[str, Any]) -> dict[str, Any]:
    """The printable part of event details (run records carry nested lists)."""
    keep = (
        "status",
        "bytes_added",
        "files",
        "snapshot_ids",
        "errors",
        "step",
        "error",
        "snapshot",
        "reasons",
        "top_dirs",
        "examples",
    )
    out: dict[str, Any] = {}
    for key in keep:
        value = details.get(key)
        if value in (None, "", [], 0):
            continue
        out[key] = ", ".join(str(v) for v in value[:5]) if isinstance(value, list) else value
    return out


def evaluate(config: Config, now: dt.datetime, last_success: Mapping[str, dt.datetime | None]) -> list[Event]:
    """What ``amber alerts check`` and the daemon look at: stale jobs and full destinations."""
    events = alert_policy.stale_events(last_success, now, config.alerts.stale_hours)
    return events + capacity_events(destinations(config))


def last_successes(config: Config) -> dict[str, dt.datetime | None]:
    """When each configured job last succeeded, from the state database."""
    db = StateDB(config.state.path)
    found: dict[str, dt.datetime | None] = {}
    for name in config.jobs:
        run = db.last_success(name)
        found[name] = dt.datetime.fromtimestamp(run.ended or run.started, dt.UTC) if run else None
    return found


def check_alerts(config: Config, now: dt.datetime | None = None) -> list[tuple[Event, list[Delivery]]]:
    """Evaluate the dead man's switch and capacity now and send what is due (dedup applies)."""
    notifier = notifier_for(config)
    moment = now or dt.datetime.now(dt.UTC)
    return [(event, notifier.send(event)) for event in evaluate(config, moment, last_successes(config))]


class AlertsExtension:
    """A daemon extension: the dead man's switch and capacity checks, at most once a minute."""

    def __init__(self, warn: Callable[[str], None] = lambda _m: None, every: float = 60.0) -> None:
        self.warn = warn
        self.every = every
        self._last = 0.0

    def start(self, config: Config) -> None:
        self._last = 0.0

    def tick(self, config: Config) -> None:
        if time.monotonic() - self._last < self.every:
            return
        self._last = time.monotonic()
        for _event, deliveries in check_alerts(config):
            for d in deliveries:
                if d.outcome == "failed":
                    self.warn(f"notification to {d.target} failed: {d.error}")

    def stop(self) -> None:
        return None
