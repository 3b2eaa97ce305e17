"""Small files are read in batches: one pool job for many files, not one each.

A job per 2 KiB file costs more in thread hand-offs than the read itself.
"""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import Future
from typing import Protocol

from amber.engine.filereader import ContentReader, FileContent, open_file

SMALL_FILE = 64 * 1024  # below this size (and with one link) a file joins a batch
BATCH_FILES = 64
BATCH_BYTES = 1 << 20

BatchFuture = Future[list[FileContent | OSError]]
_WILLNEED: int | None = getattr(os, "POSIX_FADV_WILLNEED", None)
_CLOSED = -1


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
    """Read ``items`` in order; per-file OSErrors are results, anything else fails the batch.

    All files are opened and announced to the kernel (POSIX_FADV_WILLNEED) before
    the first is read: on a cold cache the disk then serves the whole batch at
    once instead of one small read after another.
    """
    opened: list[int | OSError] = []
    results: list[FileContent | OSError] = []
    try:
        for path, st in items:
            try:
                fd = open_file(path)
            except OSError as exc:
                opened.append(exc)
                continue
            opened.append(fd)
            if st.st_size and _WILLNEED is not None:
                with contextlib.suppress(OSError):
                    os.posix_fadvise(fd, 0, st.st_size, _WILLNEED)
        for i, (_, st) in enumerate(items):
            handle = opened[i]
            if isinstance(handle, OSError):
                results.append(handle)
                continue
            opened[i] = _CLOSED  # read_open closes it, even on error
            try:
                results.append(reader.read_open(handle, st))
            except OSError as exc:
                results.append(exc)
    except BaseException as exc:  # e.g. DiskFull from a pack write: fail the whole batch
        for handle in opened:
            if isinstance(handle, int) and handle >= 0:
                os.close(handle)
        future.set_exception(exc)
        return
    future.set_result(results)
