"""Progress reporting: a Protocol with a silent default."""

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
