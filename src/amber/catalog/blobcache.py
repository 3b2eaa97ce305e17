"""File data for the mounted view: decrypted blobs in a bounded LRU, with read-ahead.

A FUSE read asks for 128 KiB at a time; a blob is about 1 MiB. Each blob is loaded
(read from its pack, decrypted, verified) once while it stays cached, and the blob
after the last one a read touched is loaded in the background, so sequential
reads find it ready.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from amber.errors import IntegrityError

DEFAULT_CAPACITY = 64 << 20


class BlobCache:
    """Thread-safe: concurrent requests for one blob share a single load."""

    def __init__(self, load: Callable[[bytes], bytes], capacity: int = DEFAULT_CAPACITY,
                 readahead_workers: int = 2) -> None:  # fmt: skip
        self._load = load
        self.capacity = capacity
        self._lock = threading.Lock()
        self._blobs: OrderedDict[bytes, bytes] = OrderedDict()
        self._loading: dict[bytes, Future[bytes]] = {}
        self._pool = ThreadPoolExecutor(readahead_workers, thread_name_prefix="amber-readahead")
        self.cached_bytes = 0
        self.loads = 0  # blobs loaded from the repository (a measure for tests and benchmarks)

    def __contains__(self, blob_id: bytes) -> bool:
        with self._lock:
            return blob_id in self._blobs

    def get(self, blob_id: bytes) -> bytes:
        with self._lock:
            data = self._blobs.get(blob_id)
            if data is not None:
                self._blobs.move_to_end(blob_id)
                return data
            pending = self._loading.get(blob_id)
            if pending is None:
                pending = self._loading[blob_id] = Future()
                mine = True
            else:
                mine = False
        if mine:
            self._fill(blob_id, pending)
        return pending.result()

    def prefetch(self, blob_id: bytes) -> None:
        """Start loading a blob in the background unless it is cached or on its way."""
        with self._lock:
            if blob_id in self._blobs or blob_id in self._loading:
                return
            pending = self._loading[blob_id] = Future()
        try:
            self._pool.submit(self._fill, blob_id, pending)
        except RuntimeError:  # shut down: nobody waits for it
            with self._lock:
                self._loading.pop(blob_id, None)

    def _fill(self, blob_id: bytes, pending: Future[bytes]) -> None:
        try:
            data = self._load(blob_id)
        except BaseException as exc:  # a failed load is not cached: the next read tries again
            with self._lock:
                self._loading.pop(blob_id, None)
            pending.set_exception(exc)
            return
        with self._lock:
            self.loads += 1
            self._loading.pop(blob_id, None)
            if len(data) <= self.capacity:
                self._blobs[blob_id] = data
                self.cached_bytes += len(data)
                while self.cached_bytes > self.capacity:
                    _, old = self._blobs.popitem(last=False)
                    self.cached_bytes -= len(old)
        pending.set_result(data)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class FileContent:
    """One file's blobs laid end to end; reads at any offset and length."""

    def __init__(self, blob_ids: Sequence[bytes], lengths: Sequence[int], cache: BlobCache) -> None:
        self._ids = list(blob_ids)
        self._lengths = list(lengths)
        self._starts = [0, *itertools.accumulate(self._lengths)]
        self.size = self._starts[-1]
        self._cache = cache

    def read(self, offset: int, size: int) -> bytes:
        end = min(self.size, offset + size)
        if offset < 0 or offset >= end:
            return b""
        i = bisect.bisect_right(self._starts, offset) - 1
        parts: list[memoryview] = []
        pos = offset
        while pos < end and i < len(self._ids):
            blob = self._cache.get(self._ids[i])
            if len(blob) != self._lengths[i]:
                raise IntegrityError(f"blob {self._ids[i].hex()[:16]} has an unexpected length")
            start = self._starts[i]
            parts.append(memoryview(blob)[pos - start : end - start])
            pos = start + min(len(blob), end - start)
            i += 1
        if i < len(self._ids):
            self._cache.prefetch(self._ids[i])
        return b"".join(parts)
