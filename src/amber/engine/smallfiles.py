"""Small files are read in batches: one pool job for many files, not one each.

A job per 2 KiB file costs more in thread hand-offs than the read itself.
"""

from __future__ import annotations

import os
from concurrent.futures import Future
from typing import Protocol

from amber.engine.filereader import ContentReader, FileContent

SMALL_FILE = 64 * 1024  # below this size (and with one link) a file joins a batch
BATCH_FILES = 64
BATCH_BYTES = 1 << 20

BatchFuture = Future[list[FileContent | OSError]]


class PendingContent(Protocol):
    def done(self) -> bool: ...

    def result(self) -> FileContent: ...


class BatchItem:
    """One file's result inside a batch of small files read by one job."""

    __slots__ = ("_future", "_index")

    def __init__(self, future: BatchFuture, index: int) -> None:
        self._future = future
        self._index = index

    def done(self) -> bool:
        return self._future.done()

    def result(self) -> FileContent:
        r = self._future.result()[self._index]
        if isinstance(r, OSError):
            raise r
        return r


def read_batch(reader: ContentReader, items: list[tuple[bytes, os.stat_result]], future: BatchFuture) -> None:
    """Read ``items`` in order; per-file OSErrors are results, anything else fails the batch."""
    results: list[FileContent | OSError] = []
    try:
        for path, st in items:
            try:
                results.append(reader.read_file(path, st))
            except OSError as exc:
                results.append(exc)
    except BaseException as exc:  # e.g. DiskFull from a pack write: fail the whole batch
        future.set_exception(exc)
        return
    future.set_result(results)
