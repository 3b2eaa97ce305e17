"""Progress reporting: a Protocol with a silent default.

An operation's event sink (``amber.events``) is a progress; it says ``silent``
while nobody listens, so hot loops may skip per-file calls (see :func:`is_silent`).
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def file_done(self, path: bytes, size: int, status: str) -> None: ...

    def bytes_done(self, n: int) -> None: ...

    def error(self, path: bytes, message: str) -> None: ...


class NullProgress:
    def file_done(self, path: bytes, size: int, status: str) -> None:
        pass

    def bytes_done(self, n: int) -> None:
        pass

    def error(self, path: bytes, message: str) -> None:
        pass


def is_silent(progress: Progress) -> bool:
    """True when no one hears ``progress`` now: per-file calls may be left out (totals still count)."""
    return isinstance(progress, NullProgress) or bool(getattr(progress, "silent", False))
