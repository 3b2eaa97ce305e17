"""One operation's context: what it runs with, how it is stopped, and what it reports.

Every front end builds one per operation (the CLI per command, `amber run` and
the daemon per job, the web app per request) and passes it down, so two
operations in one process never share settings (restic passes ``ctx`` and its
global options to each command the same way). It carries:

* ``options``: the backend options and bandwidth limits (``-o``, ``--limit-*``,
  ``[limits]``); a configured repository adds its own on top;
* ``cancel``: the cancel signal; signal handlers and a lapsed lease set it and
  the engine's loops check it (``amber.cancel``);
* ``events``: the one sink for what the operation tells the outside world while
  it runs (``amber.events``): progress (files, bytes, unreadable paths), run
  events (`amber run`'s start, outcome, integrity) and notices (retry, lease,
  limits, audit). Front ends subscribe to it; a repository opened for the
  operation carries it, so services report progress to it with no wiring. A
  child's sink forwards to its parent's;
* ``record``: the audit record (command, arguments, repository, outcome), handed
  to the observers once when the operation finishes. The audit log is one such
  observer (``ops.audit``); services never know it exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from amber.cancel import CancelToken
from amber.errors import AmberError, Interrupted
from amber.events import Events, EventSink, NullEvents, Subscriber
from amber.storage.url import BackendOptions

__all__ = ["EventSink", "Events", "NullEvents", "OperationContext", "OperationObserver", "OperationRecord",
           "Subscriber"]  # fmt: skip


@dataclass
class OperationRecord:
    """What the audit log keeps of one operation."""

    command: str = ""  # "backup", "key add", "job nightly"
    args: list[str] = field(default_factory=list)
    repository: str = ""  # the first repository the operation opened (or was pointed at)
    exit_code: int | None = None  # None while running
    error: str = ""
    details: dict[str, Any] = field(default_factory=dict)  # what the operation did, for the record (purge)


class OperationObserver(Protocol):
    def operation_finished(self, record: OperationRecord) -> None: ...


@dataclass
class OperationContext:
    options: BackendOptions = field(default_factory=BackendOptions)
    cancel: CancelToken = field(default_factory=CancelToken)
    events: Events = field(default_factory=Events)
    record: OperationRecord = field(default_factory=OperationRecord)
    observers: list[OperationObserver] = field(default_factory=list)

    def backend_options(self, options: BackendOptions | None = None) -> BackendOptions:
        """``options`` (default: the context's) with retry notices sent to the event sink."""
        opts = options if options is not None else self.options
        if opts.on_retry is not None:
            return opts
        return replace(opts, on_retry=lambda what, attempt, exc: self.events.notice(
            "retry", f"{what}: {exc.message}; retrying (attempt {attempt + 1})"))  # fmt: skip

    def opened(self, location: str) -> None:
        """A repository was opened for this operation: the first one names it in the record."""
        if not self.record.repository:
            self.record.repository = location

    def child(self, command: str, args: Sequence[str] = (), options: BackendOptions | None = None,
              repository: str = "") -> OperationContext:  # fmt: skip
        """A sub-operation (one job of `amber run` or the daemon): stopped with this one, with its own
        options, record and sink (whose events also reach this one's); the same observers."""
        return OperationContext(
            options if options is not None else self.options, self.cancel.child(), self.events.child(),
            OperationRecord(command, list(args), repository), list(self.observers),
        )  # fmt: skip

    def finish(self, exit_code: int, error: str = "") -> None:
        """Record the outcome and tell the observers, once; an observer's failure is only a notice."""
        if self.record.exit_code is not None:
            return
        self.record.exit_code = exit_code
        self.record.error = error
        for observer in self.observers:
            try:
                observer.operation_finished(self.record)
            except AmberError as exc:
                self.events.notice("audit", f"{type(observer).__name__}: {exc.message}")

    def finish_with(self, exc: BaseException | None) -> None:
        """:meth:`finish` from how the operation ended (None: success)."""
        if exc is None:
            self.finish(0)
        elif isinstance(exc, AmberError):
            self.finish(exc.exit_code, exc.message)
        elif isinstance(exc, KeyboardInterrupt):
            self.finish(Interrupted.exit_code, Interrupted.default_message)
        else:
            self.finish(1, f"{type(exc).__name__}: {exc}")
