"""The operations running in this process, for a front end that shows what it did not start.

A front end that starts an operation registers its context here while it runs
(the CLI its command, ``ops.run`` each job of `amber run` and the daemon, the
web app its own runs). A watcher (the web dashboard inside the daemon) hears of
every registered operation, running or to come, and may subscribe a sink to
that operation's events. Services never look here: an operation reports only to
its own context's sink, and nothing is sent anywhere by default.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from amber.events import EventSink
from amber.services.context import OperationContext


class OperationWatcher(Protocol):
    def operation_started(self, ctx: OperationContext) -> EventSink | None:
        """A sink to subscribe to ``ctx``'s events, or None to leave it alone."""

    def operation_finished(self, ctx: OperationContext) -> None: ...


class OperationRegistry:
    def __init__(self) -> None:
        self._running: list[OperationContext] = []
        self._watchers: list[OperationWatcher] = []
        self._subscriptions: dict[tuple[int, int], Callable[[], None]] = {}  # (id(ctx), id(watcher))
        self._lock = threading.RLock()

    @property
    def running(self) -> list[OperationContext]:
        with self._lock:
            return list(self._running)

    @contextmanager
    def track(self, ctx: OperationContext) -> Iterator[OperationContext]:
        """``ctx`` is running while inside: the watchers hear of it, then of its end."""
        with self._lock:
            self._running.append(ctx)
            watchers = list(self._watchers)
        for watcher in watchers:
            self._attach(ctx, watcher)
        try:
            yield ctx
        finally:
            with self._lock:
                self._running.remove(ctx)
                watchers = list(self._watchers)
            for watcher in watchers:
                self._detach(ctx, watcher)

    def watch(self, watcher: OperationWatcher) -> Callable[[], None]:
        """Hear of every operation running now or later; returns the call that stops watching."""
        with self._lock:
            self._watchers.append(watcher)
            running = list(self._running)
        for ctx in running:
            self._attach(ctx, watcher)

        def unwatch() -> None:
            with self._lock:
                if watcher in self._watchers:
                    self._watchers.remove(watcher)
                keys = [k for k in self._subscriptions if k[1] == id(watcher)]
                unsubscribes = [self._subscriptions.pop(k) for k in keys]
            for unsubscribe in unsubscribes:
                unsubscribe()

        return unwatch

    def _attach(self, ctx: OperationContext, watcher: OperationWatcher) -> None:
        try:
            sink = watcher.operation_started(ctx)
        except Exception as exc:  # a dashboard bug must not stop a backup
            ctx.events.notice("subscriber", f"{type(watcher).__name__}: {type(exc).__name__}: {exc}")
            return
        if sink is not None:
            with self._lock:
                self._subscriptions[(id(ctx), id(watcher))] = ctx.events.subscribe(sink)

    def _detach(self, ctx: OperationContext, watcher: OperationWatcher) -> None:
        with self._lock:
            unsubscribe = self._subscriptions.pop((id(ctx), id(watcher)), None)
        if unsubscribe is None:
            return
        unsubscribe()
        try:
            watcher.operation_finished(ctx)
        except Exception as exc:
            ctx.events.notice("subscriber", f"{type(watcher).__name__}: {type(exc).__name__}: {exc}")


# This process's operations. Front ends register here; services never read it.
RUNNING = OperationRegistry()
