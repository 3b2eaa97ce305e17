"""Retry wrapper: exponential backoff with jitter and a deadline on every request.

Only :class:`~amber.errors.TransientStorageError` is retried; permanent errors
(missing object, permission, disk full) pass straight through. A request that
does not finish within its deadline is abandoned and counts as transient, so a
hung connection is retried instead of blocking a backup for hours.

Reads are verified before they are returned: a range shorter than asked for, or a
whole-object read whose SHA-256 does not match its name (design.md §3) and whose
length differs from the stored size, is a truncated read and is retried.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from amber.errors import ObjectNotFound, StorageError, TransientStorageError
from amber.storage.base import Backend, FileInfo, FileType, Handle, RetentionBackend
from amber.storage.forwarding import ForwardingBackend
from amber.storage.retention import wrap_retention

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 8  # tries in total, the first one included
    base_delay: float = 0.5  # seconds before the first retry
    max_delay: float = 30.0
    max_total: float = 900.0  # never start a retry later than this after the first try
    timeout: float | None = 120.0  # deadline of a request that moves no bytes; None: no deadline
    min_rate: float = 32 * 1024  # bytes/s: a request moving N bytes gets N / min_rate more seconds


def backoff_delay(policy: RetryPolicy, retry: int, jitter: float) -> float:
    """Seconds to wait before retry number ``retry`` (1-based); ``jitter`` in [0, 1).

    "Equal jitter": half the exponential step is fixed, half is random, so
    clients that failed together do not retry together.
    """
    step = min(policy.max_delay, policy.base_delay * 2.0 ** (retry - 1))
    return step / 2 + step / 2 * jitter


def request_deadline(policy: RetryPolicy, nbytes: int) -> float | None:
    if policy.timeout is None:
        return None
    return policy.timeout + nbytes / policy.min_rate


def run_with_deadline(fn: Callable[[], T], seconds: float | None, what: str) -> T:
    """Run ``fn``; raise TransientStorageError if it has not returned after ``seconds``.

    The call runs on its own daemon thread, which is abandoned on timeout (a
    blocked socket cannot be interrupted from Python); its late result is
    dropped. Saves are atomic and idempotent, so a late save does no harm.
    """
    if seconds is None:
        return fn()
    result: list[T] = []
    failure: list[BaseException] = []
    done = threading.Event()

    def target() -> None:
        try:
            result.append(fn())
        except BaseException as exc:
            failure.append(exc)
        finally:
            done.set()

    threading.Thread(target=target, name="amber-request", daemon=True).start()
    if not done.wait(seconds):
        raise TransientStorageError(f"{what}: no answer within {seconds:.0f}s")
    if failure:
        raise failure[0]
    return result[0]


def _is_content_name(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def _describe(handle: Handle) -> str:
    return handle.type.value if handle.type is FileType.CONFIG else f"{handle.type.value}/{handle.name[:12]}"


class RetryingBackend(ForwardingBackend):
    """Wraps any Backend; see the module docstring."""

    passes_mapped_reads = True  # loads unchanged (a range that fails to map is loaded through this layer)

    def __init__(
        self,
        inner: Backend,
        policy: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
        on_retry: Callable[[str, int, TransientStorageError], None] | None = None,
    ) -> None:
        super().__init__(inner)
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._on_retry = on_retry
        self.retries = 0  # total retries so far (read by tests and progress output)

    def _call(self, what: str, fn: Callable[[], T], nbytes: int = 0, *, idempotent_remove: bool = False) -> T:
        policy = self.policy
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return run_with_deadline(fn, request_deadline(policy, nbytes), what)
            except ObjectNotFound:
                if idempotent_remove and attempt > 1:
                    return None  # type: ignore[return-value]  # an earlier try removed it
                raise
            except TransientStorageError as exc:
                with self._rng_lock:
                    delay = backoff_delay(policy, attempt, self._rng.random())
                late = time.monotonic() - started + delay > policy.max_total
                if attempt >= policy.attempts or late:
                    raise TransientStorageError(f"{exc.message} (gave up after {attempt} attempts)") from exc
                self.retries += 1
                if self._on_retry is not None:
                    self._on_retry(what, attempt, exc)
                self._sleep(delay)

    # -- Backend ------------------------------------------------------------------
    def create(self) -> None:
        self._call("create", self.inner.create)

    def exists(self) -> bool:
        return self._call("exists", self.inner.exists)

    def save(self, handle: Handle, data: bytes | bytearray | memoryview) -> None:
        self._call(f"save {_describe(handle)}", lambda: self.inner.save(handle, data), len(data))

    def load(
        self, handle: Handle, offset: int = 0, length: int | None = None, *, limit: int | None = None
    ) -> bytes:
        def attempt() -> bytes:
            data = self.inner.load(handle, offset, length, limit=limit)
            self._verify(handle, offset, length, data)
            return data

        return self._call(f"load {_describe(handle)}", attempt, length or 0)

    def _verify(self, handle: Handle, offset: int, length: int | None, data: bytes) -> None:
        if length is not None:
            if len(data) > length:
                raise StorageError(f"{_describe(handle)}: backend returned more bytes than asked for")
            if len(data) == length:
                return
        elif (
            offset == 0 and _is_content_name(handle.name) and hashlib.sha256(data).hexdigest() == handle.name
        ):
            return
        size = self.inner.stat(handle).size  # short, or not self-verifying: compare with the stored size
        expected = max(0, size - offset) if length is None else max(0, min(length, size - offset))
        if len(data) != expected:
            raise TransientStorageError(
                f"{_describe(handle)}: truncated read ({len(data)} of {expected} bytes)"
            )

    def stat(self, handle: Handle) -> FileInfo:
        return self._call(f"stat {_describe(handle)}", lambda: self.inner.stat(handle))

    def list(self, type: FileType) -> Iterator[FileInfo]:
        # listed whole inside one request, so a retry never repeats or skips entries
        yield from self._call(f"list {type.value}", lambda: list(self.inner.list(type)))

    def remove(self, handle: Handle) -> None:
        self._call(f"remove {_describe(handle)}", lambda: self.inner.remove(handle), idempotent_remove=True)

    def retention_capability(self) -> RetentionBackend | None:
        """Object Lock calls are retried like every other request."""
        return wrap_retention(self.inner, lambda what, fn: self._call(what, fn))


class DeadlineBackend(ForwardingBackend):
    """Gives every request of ``inner`` the deadline of ``policy`` (a request past it is transient).

    ``open_backend`` places this layer under the connection limit and the retry
    layer above it, so the deadline counts from when the request got its slot,
    never the time spent queueing for one.
    """

    passes_mapped_reads = True  # loads unchanged (a range that fails to map is loaded through this layer)

    def __init__(self, inner: Backend, policy: RetryPolicy) -> None:
        super().__init__(inner)
        self.policy = policy

    def _timed(self, what: str, fn: Callable[[], T], nbytes: int = 0) -> T:
        return run_with_deadline(fn, request_deadline(self.policy, nbytes), what)

    def create(self) -> None:
        self._timed("create", self.inner.create)

    def exists(self) -> bool:
        return self._timed("exists", self.inner.exists)

    def save(self, handle: Handle, data: bytes | bytearray | memoryview) -> None:
        self._timed(f"save {_describe(handle)}", lambda: self.inner.save(handle, data), len(data))

    def load(
        self, handle: Handle, offset: int = 0, length: int | None = None, *, limit: int | None = None
    ) -> bytes:
        what = f"load {_describe(handle)}"
        return self._timed(what, lambda: self.inner.load(handle, offset, length, limit=limit), length or 0)

    def stat(self, handle: Handle) -> FileInfo:
        return self._timed(f"stat {_describe(handle)}", lambda: self.inner.stat(handle))

    def list(self, type: FileType) -> Iterator[FileInfo]:
        return iter(self._timed(f"list {type.value}", lambda: list(self.inner.list(type))))

    def remove(self, handle: Handle) -> None:
        self._timed(f"remove {_describe(handle)}", lambda: self.inner.remove(handle))

    def retention_capability(self) -> RetentionBackend | None:
        return wrap_retention(self.inner, lambda what, fn: self._timed(what, fn))
