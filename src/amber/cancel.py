"""A cancel signal for one operation: set by a signal handler or a lapsed lease, checked by loops.

It sits outside the layers, like ``amber.errors``: the repository's lock sets
it, the engine's loops check it, the services and front ends create it. The
first reason given wins; :meth:`CancelToken.check` raises a fresh copy of it at
each safe point, so every thread that checks stops with the same error.
A child token (one job of a daemon) is cancelled with its parent, not the
other way round. A loop that checks a token marks it ``watched`` (and its
parents): a signal handler stops an operation that nobody watches at once, as
there is no safe point to wait for.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable

from amber.errors import AmberError


class CancelToken:
    def __init__(self, *parents: CancelToken) -> None:
        """A token cancelled by its own ``cancel`` or by any of ``parents``'."""
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._reason: AmberError | None = None
        self._children: weakref.WeakSet[CancelToken] = weakref.WeakSet()
        self._callbacks: list[Callable[[], None]] = []
        self._parents = parents
        self.watched = False
        for parent in parents:
            with parent._lock:
                parent._children.add(self)
            if parent.reason is not None:
                self.cancel(parent.reason)

    def child(self) -> CancelToken:
        return CancelToken(self)

    @staticmethod
    def any_of(*tokens: CancelToken) -> CancelToken:
        """``tokens[0]`` if they are all the same, else a token cancelled by any of them."""
        return tokens[0] if all(t is tokens[0] for t in tokens) else CancelToken(*tokens)

    def cancel(self, reason: AmberError) -> None:
        """Ask the operation to stop with ``reason``; later reasons are ignored."""
        with self._lock:
            if self._reason is None:
                self._reason = reason
            children = list(self._children)
            callbacks, self._callbacks = self._callbacks, []
        self._event.set()
        for child in children:
            child.cancel(reason)
        for callback in callbacks:
            callback()

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (once) when cancelled, at once if already: to unblock a blocking read.

        It may run in a signal handler: keep it to something like killing a child process.
        """
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def watch(self) -> CancelToken:
        """Declare that a loop checks this token at safe points; returns it."""
        self.watched = True
        for parent in self._parents:
            parent.watch()
        return self

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    @property
    def reason(self) -> AmberError | None:
        return self._reason

    def check(self) -> None:
        """A safe point: raise the reason if the operation was cancelled."""
        if self._event.is_set():
            reason = self._reason
            assert reason is not None
            raise type(reason)(reason.message)

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True as soon as the operation is cancelled."""
        return self._event.wait(seconds)
