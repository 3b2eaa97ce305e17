"""Bandwidth limits (``--limit-upload`` / ``--limit-download``) as a backend wrapper.

A token bucket shared by every thread: each request takes as many tokens as it
moves bytes. A request larger than the bucket drives it into debt, and the next
request waits the debt off, so the long-run rate is exact while a single pack is
still sent in one piece. Lock files are not throttled: a lease refresh must not
wait off the debt of a pack upload.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from amber.storage.base import Backend, FileType, Handle
from amber.storage.forwarding import ForwardingBackend

UNTHROTTLED = frozenset({FileType.LOCK})

_PREPAY_MAX = 64 << 20


class TokenBucket:
    """``rate`` bytes per second, at most ``burst`` bytes saved up (default: one second's worth)."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = rate if burst is None else burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._stamp = clock()
        self._lock = threading.Lock()

    def reserve(self, n: int) -> float:
        """Take ``n`` tokens now; return how long the caller must wait before using them."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= n
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def take(self, n: int) -> None:
        wait = self.reserve(n)
        if wait > 0:
            self._sleep(wait)


def kib_bucket(kib_per_second: float | None) -> TokenBucket | None:
    return None if not kib_per_second else TokenBucket(kib_per_second * 1024)


class RateLimitedBackend(ForwardingBackend):
    """Throttles the bytes of ``save`` (upload) and ``load`` (download), lock files excepted."""

    def __init__(self, inner: Backend, upload: TokenBucket | None, download: TokenBucket | None) -> None:
        super().__init__(inner)
        self.upload = upload
        self.download = download

    def save(self, handle: Handle, data: bytes | bytearray | memoryview) -> None:
        if self.upload is not None and handle.type not in UNTHROTTLED:
            self.upload.take(len(data))
        self.inner.save(handle, data)

    def load(
        self, handle: Handle, offset: int = 0, length: int | None = None, *, limit: int | None = None
    ) -> bytes:
        if handle.type in UNTHROTTLED or self.download is None:
            return self.inner.load(handle, offset, length, limit=limit)
        # paid before, so parallel readers queue up; a range is paid up to what a pack
        # can hold (a damaged index may ask for terabytes), the rest once it arrived
        prepaid = min(length, _PREPAY_MAX) if length is not None else 0
        if prepaid:
            self.download.take(prepaid)
        data = self.inner.load(handle, offset, length, limit=limit)
        if len(data) > prepaid:
            self.download.take(len(data) - prepaid)
        return data
