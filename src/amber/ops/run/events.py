"""What `amber run` tells the outside world: events through a small observer Protocol.

Notifications, the audit log and metrics plug in as observers; the default
observer does nothing. An observer that raises never fails the run: its
error is recorded as a note (see :class:`SafeObservers`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

# start: a job began. success | partial | failure: a job ended (details = the run record).
# integrity: a check found damage (repository = the destination). capacity: reserved for observers.
KINDS = ("start", "success", "partial", "failure", "integrity", "capacity")


@dataclass(frozen=True)
class RunEvent:
    kind: str  # one of KINDS
    job: str = ""
    message: str = ""
    repository: str = ""  # destination name, "" when about the whole job
    details: Mapping[str, Any] = field(default_factory=dict)


class RunObserver(Protocol):
    def on_event(self, event: RunEvent) -> None: ...


class NullObserver:
    def on_event(self, event: RunEvent) -> None:
        return None


class SafeObservers:
    """Fans events out; an observer's exception is reported through ``on_error``, never raised."""

    def __init__(self, observers: Iterable[RunObserver], on_error: Callable[[str], None]) -> None:
        self._observers = list(observers)
        self._on_error = on_error

    def on_event(self, event: RunEvent) -> None:
        for observer in self._observers:
            try:
                observer.on_event(event)
            except Exception as exc:  # an alerting bug must not fail a backup
                self._on_error(f"{type(observer).__name__}: {type(exc).__name__}: {exc}")
