"""What an operation tells the outside world while it runs: one sink for progress, run events and notices.

It sits outside the layers, like ``amber.cancel``: the repository carries the
sink of the operation that opened it (so a service reports progress without
its caller wiring anything), the services and ``ops.run`` send to it, and the
front ends subscribe to it (the CLI's progress bar and JSON lines, `amber
run`'s alerts, the web dashboard's live view).

Three kinds of event, one method each family:

* progress: ``file_done``, ``bytes_done``, ``error`` (a path that could not be
  read): the engine's ``Progress`` protocol, so a sink is a progress;
* ``run_event``: what `amber run` and the daemon report about a job
  (:class:`RunEvent`: start, success, partial, failure, integrity, anomaly);
* ``notice(kind, message)``: one line about the operation: "retry" (a request
  is retried), "lease", "limits", "audit" (the audit log could not be
  written), "subscriber" (a subscriber failed), "step" (`amber run` starts a
  step: "backup main"), "note" (a line about a job: a step's result, a hook).

:class:`Events` fans every event out to its subscribers. A subscriber's
exception never fails the operation: it becomes a "subscriber" notice to the
others. A child sink (one job of `amber run`) forwards to its parent, so the
parent's subscribers hear every job and a job's own subscribers only that job.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

# start: a job began. success | partial | failure: a job ended (details = the run record).
# integrity: a check found damage (repository = the destination). anomaly: a suspicious snapshot.
# capacity: reserved for observers.
RUN_KINDS = ("start", "success", "partial", "failure", "integrity", "anomaly", "capacity")


@dataclass(frozen=True)
class RunEvent:
    kind: str  # one of RUN_KINDS
    job: str = ""
    message: str = ""
    repository: str = ""  # destination name, "" when about the whole job
    details: Mapping[str, Any] = field(default_factory=dict)


class EventSink(Protocol):
    def notice(self, kind: str, message: str) -> None: ...

    def file_done(self, path: bytes, size: int, status: str) -> None: ...

    def bytes_done(self, n: int) -> None: ...

    def error(self, path: bytes, message: str) -> None: ...

    def run_event(self, event: RunEvent) -> None: ...


class Subscriber:
    """A sink that ignores everything: subscribers derive from it and override what they want."""

    def notice(self, kind: str, message: str) -> None:
        return None

    def file_done(self, path: bytes, size: int, status: str) -> None:
        return None

    def bytes_done(self, n: int) -> None:
        return None

    def error(self, path: bytes, message: str) -> None:
        return None

    def run_event(self, event: RunEvent) -> None:
        return None


class NullEvents(Subscriber):
    """The sink of an operation nobody listens to."""

    silent = True


class Events:
    """The fan-out sink of one operation; thread-safe (workers report from their own threads)."""

    def __init__(self, parent: EventSink | None = None) -> None:
        self._subscribers: tuple[EventSink, ...] = ()
        self._lock = threading.Lock()
        self._parent = parent

    def subscribe(self, sink: EventSink) -> Callable[[], None]:
        """Hear this operation's events (and its children's); returns the call that unsubscribes."""
        with self._lock:
            self._subscribers = (*self._subscribers, sink)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(s for s in self._subscribers if s is not sink)

        return unsubscribe

    def child(self) -> Events:
        """A sink for a sub-operation: its events also reach this one's subscribers."""
        return Events(parent=self)

    @property
    def subscribers(self) -> tuple[EventSink, ...]:
        return self._subscribers

    @property
    def silent(self) -> bool:
        """Nobody hears this sink now (hot loops may skip per-file calls; see ``engine.progress``)."""
        parent = self._parent
        return not self._subscribers and (parent is None or bool(getattr(parent, "silent", False)))

    def _targets(self) -> tuple[EventSink, ...]:
        subscribers = self._subscribers  # a tuple swapped whole: no lock needed to read it
        return subscribers if self._parent is None else (*subscribers, self._parent)

    def _failed(self, sink: EventSink, exc: Exception) -> None:
        message = f"{type(sink).__name__}: {type(exc).__name__}: {exc}"
        for other in self._targets():
            if other is not sink:
                with contextlib.suppress(Exception):  # failing to tell of a failure: nothing left to do
                    other.notice("subscriber", message)

    def notice(self, kind: str, message: str) -> None:
        for sink in self._targets():
            try:
                sink.notice(kind, message)
            except Exception as exc:
                self._failed(sink, exc)

    def file_done(self, path: bytes, size: int, status: str) -> None:
        for sink in self._targets():
            try:
                sink.file_done(path, size, status)
            except Exception as exc:
                self._failed(sink, exc)

    def bytes_done(self, n: int) -> None:
        for sink in self._targets():
            try:
                sink.bytes_done(n)
            except Exception as exc:
                self._failed(sink, exc)

    def error(self, path: bytes, message: str) -> None:
        for sink in self._targets():
            try:
                sink.error(path, message)
            except Exception as exc:
                self._failed(sink, exc)

    def run_event(self, event: RunEvent) -> None:
        for sink in self._targets():
            try:
                sink.run_event(event)
            except Exception as exc:  # an alerting bug must not fail a backup
                self._failed(sink, exc)
