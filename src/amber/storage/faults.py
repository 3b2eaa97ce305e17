"""Fault injection, a test hook: a wrapper that makes a healthy backend flaky.

At a configured rate, with a seeded RNG (so a failing run can be replayed), a
request fails with a transient error (before or after the real request ran, as
when an answer is lost), times out (sleeps briefly, then fails), returns a
truncated read, or hangs (sleeps ``hang`` seconds, then succeeds; use it with a
retry deadline shorter than ``hang``).

The CLI turns it on from the environment (``AMBER_FAULT_RATE`` and friends, see
:func:`plan_from_env`); it is for tests and is documented as such.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

from amber.errors import TransientStorageError, UsageError
from amber.storage.base import Backend, FileInfo, FileType, Handle, RetentionBackend
from amber.storage.forwarding import ForwardingBackend
from amber.storage.retention import wrap_retention

T = TypeVar("T")
KINDS = ("error", "timeout", "truncate", "hang")
DEFAULT_KINDS = ("error", "timeout", "truncate")


@dataclass(frozen=True, slots=True)
class FaultPlan:
    rate: float
    seed: int = 0
    kinds: tuple[str, ...] = DEFAULT_KINDS
    delay: float = 0.02  # how long an injected timeout waits before failing
    hang: float = 5.0  # how long an injected hang lasts

    def __post_init__(self) -> None:
        if not 0 <= self.rate <= 1:
            raise UsageError(f"fault rate must be between 0 and 1, not {self.rate}")
        unknown = set(self.kinds) - set(KINDS)
        if unknown or not self.kinds:
            raise UsageError(f"fault kinds must be some of {', '.join(KINDS)}")


def plan_from_env(env: Mapping[str, str]) -> FaultPlan | None:
    """``AMBER_FAULT_RATE`` (0..1), ``AMBER_FAULT_SEED``, ``AMBER_FAULT_KINDS`` (comma list)."""
    rate = env.get("AMBER_FAULT_RATE", "")
    if not rate:
        return None
    try:
        kinds = tuple(k for k in env.get("AMBER_FAULT_KINDS", ",".join(DEFAULT_KINDS)).split(",") if k)
        return FaultPlan(float(rate), int(env.get("AMBER_FAULT_SEED", "0")), kinds)
    except ValueError as exc:
        raise UsageError(f"bad AMBER_FAULT_* setting: {exc}") from exc


class FaultInjectingBackend(ForwardingBackend):
    def __init__(
        self, inner: Backend, plan: FaultPlan, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        super().__init__(inner)
        self.plan = plan
        self._sleep = sleep
        self._rng = random.Random(plan.seed)
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()  # kind -> how many were injected

    def _roll(self, allowed: tuple[str, ...]) -> tuple[str | None, float]:
        with self._lock:
            hit = self._rng.random() < self.plan.rate
            kinds = [k for k in self.plan.kinds if k in allowed]
            if not hit or not kinds:
                return None, 0.0
            kind = self._rng.choice(kinds)
            self.injected[kind] += 1
            return kind, self._rng.random()

    def _run(self, what: str, fn: Callable[[], T]) -> T:
        kind, u = self._roll(("error", "timeout", "hang"))
        return self._inject(kind, u, what, fn)

    def _inject(self, kind: str | None, u: float, what: str, fn: Callable[[], T]) -> T:
        if kind == "timeout":
            self._sleep(self.plan.delay)
            raise TransientStorageError(f"{what}: injected timeout")
        if kind == "hang":
            self._sleep(self.plan.hang)
        if kind == "error" and u < 0.5:
            raise TransientStorageError(f"{what}: injected error")
        result = fn()
        if kind == "error":  # the request ran, but its answer was "lost"
            raise TransientStorageError(f"{what}: injected error after the request ran")
        return result

    def create(self) -> None:
        self._run("create", self.inner.create)

    def exists(self) -> bool:
        return self._run("exists", self.inner.exists)

    def save(self, handle: Handle, data: bytes | bytearray | memoryview) -> None:
        self._run("save", lambda: self.inner.save(handle, data))

    def load(
        self, handle: Handle, offset: int = 0, length: int | None = None, *, limit: int | None = None
    ) -> bytes:
        kind, u = self._roll(KINDS)
        data = self._inject(kind, u, "load", lambda: self.inner.load(handle, offset, length, limit=limit))
        if kind == "truncate" and data:
            return data[: int(u * len(data))]
        return data

    def stat(self, handle: Handle) -> FileInfo:
        return self._run("stat", lambda: self.inner.stat(handle))

    def list(self, type: FileType) -> Iterator[FileInfo]:
        return iter(self._run("list", lambda: list(self.inner.list(type))))

    def remove(self, handle: Handle) -> None:
        self._run("remove", lambda: self.inner.remove(handle))

    def retention_capability(self) -> RetentionBackend | None:
        """Object Lock calls fail, time out or hang at the same rate as the others."""
        return wrap_retention(self.inner, self._run)
