"""Object Lock retention as a capability that travels up through the wrapper stack.

A backend that can keep objects immutable (S3 Object Lock) is a
:class:`~amber.storage.base.RetentionBackend`. A wrapper that should take part in
retention calls (retry, connection slots, fault injection) is a
:class:`RetentionCapable`: it hands out the capability of the layer below,
wrapped the same way it wraps ``save`` or ``load``, so ``extend_retention`` is
retried, bounded and faulted like any other request. Layers that are neither
are skipped through their ``inner`` attribute.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Protocol, TypeVar, runtime_checkable

from amber.storage.base import Handle, RetentionBackend

T = TypeVar("T")


@runtime_checkable
class RetentionCapable(Protocol):
    """A wrapper that forwards the Object Lock capability of what it wraps."""

    def retention_capability(self) -> RetentionBackend | None:
        """The capability of the layers below, wrapped by this one; None when there is none."""


def retention_of(backend: object) -> RetentionBackend | None:
    """The Object Lock capability of ``backend`` as seen through its outermost wrapper."""
    layer: object | None = backend
    while layer is not None:
        if isinstance(layer, RetentionCapable):
            return layer.retention_capability()
        if isinstance(layer, RetentionBackend):
            return layer
        layer = getattr(layer, "inner", None)
    return None


class WrappedRetention:
    """``inner``'s capability with every ``extend_retention`` call passed through ``around``."""

    def __init__(self, inner: RetentionBackend, around: Callable[[str, Callable[[], bool]], bool]) -> None:
        self.inner = inner
        self._around = around

    def retention_days(self) -> int:
        return self.inner.retention_days()

    def extend_retention(self, handle: Handle, until: datetime.datetime) -> bool:
        what = f"extend retention {handle.type.value}/{handle.name[:12]}".rstrip("/")
        return self._around(what, lambda: self.inner.extend_retention(handle, until))


def wrap_retention(
    inner_backend: object, around: Callable[[str, Callable[[], bool]], bool]
) -> RetentionBackend | None:
    """The capability under ``inner_backend``, if any, wrapped with ``around``."""
    found = retention_of(inner_backend)
    return None if found is None else WrappedRetention(found, around)
