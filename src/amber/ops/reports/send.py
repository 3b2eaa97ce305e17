"""Building a report by kind, sending it to its recipients, and sending scheduled reports once per period.

``[reports.KIND]`` says when (an OnCalendar schedule) and to whom. The period a
scheduled report covers ends at the schedule's latest occurrence; the
``reports_sent`` table in the state database holds (kind, period) once a
delivery succeeded, so neither a daemon restart nor a systemd timer firing
again sends it twice. A report configured for the first time is sent for an
occurrence at most :data:`FIRST_GRACE` old (not for last month's).
"""

from __future__ import annotations

import datetime as dt
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from amber.errors import NotifyFailed, UsageError
from amber.ops import state
from amber.ops.alerting.notify import Delivery, shown
from amber.ops.config.model import Config
from amber.ops.config.reports import KINDS, ReportConfig
from amber.ops.config.sections import NotifyConfig
from amber.ops.reports import daily, mail, monthly, render, weekly
from amber.ops.reports.document import Document
from amber.ops.schedule.calendar import next_after, parse_calendar

FIRST_GRACE = 3600.0
RETRY = 600.0  # seconds between attempts while every delivery fails

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reports_sent (
    kind TEXT NOT NULL,              -- daily | weekly | monthly
    period TEXT NOT NULL,            -- the period's end, ISO 8601 local time
    sent_at REAL NOT NULL,
    PRIMARY KEY (kind, period)
);
"""


def build(kind: str, config: Config, end: float, host: str | None = None) -> Document:
    """The report of ``kind`` for the period ending at ``end``, as a document."""
    host = socket.gethostname() if host is None else host
    if kind == "daily":
        return daily.document(daily.daily(config, end), host)
    if kind == "weekly":
        return weekly.document(weekly.weekly(config, end), host)
    if kind == "monthly":
        return monthly.document(monthly.monthly(config, end), host)
    raise UsageError(f"no report {kind!r} (expected one of {', '.join(KINDS)})")


def title(doc: Document) -> str:
    """The mail subject: the counts where a glance finds them."""
    where = f" on {doc.host}" if doc.host else ""
    return f"{doc.title}{where}: {doc.subject}"


def parts(doc: Document, html: bool = True, pdf: bool = False) -> mail.Parts:
    return mail.Parts(title(doc), render.text(doc), render.html(doc, mail=True) if html else None,
                      render.pdf(doc) if pdf else None,
                      f"amber-{doc.kind}-{doc.period[:10]}.pdf")  # fmt: skip


def recipients(config: Config, kind: str) -> tuple[list[NotifyConfig], ReportConfig]:
    chosen = config.reports.get(kind) or ReportConfig(kind, "")
    targets = chosen.recipients(config.notify)
    if not targets:
        raise UsageError(f"no recipients for the {kind} report: add 'summary' to a [[notify]] target's "
                         f"events, or set [reports.{kind}] targets")  # fmt: skip
    return targets, chosen


def deliver(targets: Sequence[NotifyConfig], message: mail.Parts) -> list[Delivery]:
    out = []
    for target in targets:
        smtp = mail.smtp_of(target.url)
        if smtp is not None:
            error = mail.send_smtp(smtp, mail.compose(message, smtp))
        else:
            error = mail.send_other(target.url, message)
        out.append(Delivery(shown(target.url), "failed" if error else "sent", error))
    return out


def send_now(config: Config, doc: Document, pdf: bool | None = None) -> list[Delivery]:
    """Send ``doc`` to its recipients; NotifyFailed (exit 25) when no delivery succeeded."""
    targets, chosen = recipients(config, doc.kind)
    results = deliver(targets, parts(doc, chosen.html, chosen.pdf if pdf is None else pdf))
    if not any(d.outcome == "sent" for d in results):
        raise NotifyFailed("; ".join(f"{d.target}: {d.error}" for d in results))
    return results


class SentLog:
    def __init__(self, path: str) -> None:
        self.path = path
        state.prepare(path, _SCHEMA)

    def has(self, kind: str, period: str) -> bool:
        with state.connect(self.path) as db:
            row = db.execute("SELECT 1 FROM reports_sent WHERE kind=? AND period=?",
                             (kind, period)).fetchone()  # fmt: skip
        return row is not None

    def latest(self, kind: str) -> tuple[str, float] | None:
        """The newest period of ``kind`` sent, and when."""
        with state.connect(self.path) as db:
            row = db.execute("SELECT period, sent_at FROM reports_sent WHERE kind=? ORDER BY sent_at DESC "
                             "LIMIT 1", (kind,)).fetchone()  # fmt: skip
        return (str(row[0]), float(row[1])) if row else None

    def add(self, kind: str, period: str, when: float) -> None:
        with state.connect(self.path) as db:
            db.execute("INSERT OR IGNORE INTO reports_sent VALUES (?, ?, ?)", (kind, period, when))


def latest_occurrence(schedule: str, since: float, now: float) -> dt.datetime | None:
    """The schedule's last occurrence in (since, now], or None. Pure."""
    cal = parse_calendar(schedule)
    found = None
    at = next_after(cal, dt.datetime.fromtimestamp(since))
    for _ in range(100_000):  # minutely over a long downtime is the worst case
        if at is None or at.timestamp() > now:
            break
        found, at = at, next_after(cal, at)
    return found


def task(kind: str) -> str:
    return f"report:{kind}"


@dataclass(frozen=True)
class Outcome:
    kind: str
    period: str  # "" when nothing was due
    status: str  # idle | already-sent | sent | failed
    deliveries: tuple[Delivery, ...] = ()


def send_scheduled(config: Config, kind: str, now: float | None = None) -> Outcome:
    """Send the ``[reports.KIND]`` report of its latest period, unless that period was sent already."""
    now = time.time() if now is None else now
    report = config.reports.get(kind)
    if report is None:
        raise UsageError(f"no [reports.{kind}] in the config: nothing is scheduled")
    db, log = state.StateDB(config.state.path), SentLog(config.state.path)
    since = db.stamp(task(kind))
    # from just before the stamp: the period last sent shows as already sent, not as idle
    occurrence = latest_occurrence(report.schedule, now - FIRST_GRACE if since is None else since - 1, now)
    if occurrence is None:
        if since is None:
            db.set_stamp(task(kind), now - FIRST_GRACE)
        return Outcome(kind, "", "idle")
    period = occurrence.isoformat(timespec="seconds")
    if log.has(kind, period):
        db.set_stamp(task(kind), occurrence.timestamp())
        return Outcome(kind, period, "already-sent")
    doc = build(kind, config, occurrence.timestamp())
    targets, _chosen = recipients(config, kind)
    results = tuple(deliver(targets, parts(doc, report.html, report.pdf)))
    if not any(d.outcome == "sent" for d in results):
        return Outcome(kind, period, "failed", results)  # the stamp stays: tried again later
    log.add(kind, period, now)
    db.set_stamp(task(kind), occurrence.timestamp())
    return Outcome(kind, period, "sent", results)


class ReportsExtension:
    """A daemon extension: each tick, send the scheduled reports that are due (each period once)."""

    def __init__(self, note: Callable[[str], None] = lambda _m: None, clock: Callable[[], float] = time.time):
        self.note = note
        self.clock = clock
        self._failed: dict[str, float] = {}  # kind -> when every delivery last failed

    def start(self, config: Config) -> None:
        self._failed.clear()

    def tick(self, config: Config) -> None:
        now = self.clock()
        for kind in config.reports:
            if now - self._failed.get(kind, -RETRY) < RETRY:
                continue
            try:
                outcome = send_scheduled(config, kind, now)
            except Exception as exc:  # one report must not stop the daemon
                self.note(f"daemon: {kind} report: {getattr(exc, 'message', exc)}")
                self._failed[kind] = now
                continue
            if outcome.status == "sent":
                self.note(f"daemon: sent the {kind} report for {outcome.period}")
            elif outcome.status == "failed":
                self._failed[kind] = now
                for d in outcome.deliveries:
                    self.note(f"daemon: {kind} report to {d.target} failed: {d.error}")

    def stop(self) -> None:
        return None
