"""SIGINT, SIGTERM and SIGHUP stop the running operation at its next safe point.

The first signal sets the operation's cancel signal: the engine's loops stop at
their next safe point, what was stored is kept (a backup indexes the packs it
uploaded), locks are released and the error is reported with the signal's exit
code (130, 143, 129). A second signal stops at once (as Ctrl-C always did), and
so does the first when no loop watches the signal (``ls``, ``snapshots``: there
is no safe point to wait for).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from amber.cancel import CancelToken
from amber.errors import AmberError, HungUp, Interrupted, Terminated

REASONS: dict[int, type[AmberError]] = {
    signal.SIGINT: Interrupted, signal.SIGTERM: Terminated, signal.SIGHUP: HungUp,
}  # fmt: skip


@contextmanager
def cancelling_on_signals(cancel: CancelToken) -> Iterator[None]:
    """While inside, the three signals cancel ``cancel`` (the main thread only can install handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        if cancel.cancelled:
            raise KeyboardInterrupt  # asked twice: stop now, not at a safe point
        cancel.cancel(REASONS[signum]())
        if not cancel.watched:
            raise KeyboardInterrupt  # nothing stops at a safe point: stop now (exit code of the signal)
        # os.write, not print: a handler may interrupt a write to stderr in progress
        os.write(2, b"amber: stopping at the next safe point (signal again to stop at once)\n")

    previous = {signum: signal.signal(signum, handler) for signum in REASONS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
