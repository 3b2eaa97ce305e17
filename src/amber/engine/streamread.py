"""Reading a pipe that a cancel can interrupt: `backup --stdin` must stop while the writer is silent.

A blocking ``read`` of a pipe returns only when data or the end comes, so a
signal would wait for the writer's next bytes. The reader waits for data in
short slices instead and checks the operation's cancel token between them.
"""

from __future__ import annotations

import os
import select
from typing import IO

from amber.cancel import CancelToken
from amber.engine.chunker import Readable

SLICE_MS = 200  # the longest a cancel waits while the writer is silent


class CancellableReader:
    """``readinto`` from a file descriptor; raises the cancel's reason instead of blocking past it."""

    def __init__(self, fd: int, cancel: CancelToken) -> None:
        self._fd = fd
        self._cancel = cancel.watch()
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)

    def readinto(self, buf: memoryview) -> int:
        while True:
            self._cancel.check()
            if not self._poll.poll(SLICE_MS):
                continue
            try:
                return os.readv(self._fd, [buf])
            except BlockingIOError:  # a non-blocking descriptor that another reader emptied
                continue


def cancellable(stream: IO[bytes], cancel: CancelToken) -> Readable | IO[bytes]:
    """``stream`` read through its descriptor with :class:`CancellableReader`, when it has one.

    The stream must not have been read from yet (its buffer would be skipped).
    """
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # BytesIO and friends never block
        return stream
    return CancellableReader(fd, cancel)
