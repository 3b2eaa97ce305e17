"""What a WAL push remembers of the blobs it stored: a local hint, never trusted (design §12d).

Loading the whole index per push costs seconds in a large repository, so a push
deduplicates against the blobs of its own batch and against the blobs recent pushes
stored, which this file remembers with the index file that lists each. A hint only
says where to look: the push loads those index files from the repository after taking
its lock and checks their packs are stored. A file that is gone (a prune replaced it),
a blob it does not list, or a pack that is missing makes the push store the blob again.
So a stale, damaged or planted hint file costs space, never data.
"""

from __future__ import annotations

import contextlib
import os

import msgspec

from amber.services.keycache import write_private
from amber.services.own_snapshots import cache_root

MAX_BLOBS = 8192  # about 600 segments of 16 MiB: a .partial and its successor, re-pushes
_MAX_BYTES = MAX_BLOBS * 128


class WalHints:
    """blob ID -> the index file that listed it when a push stored or found it."""

    def __init__(self, repository_id: str) -> None:
        self.path = os.path.join(cache_root(), "wal-hints", repository_id)
        self.entries: dict[bytes, str] = {}
        self._changed = False
        with contextlib.suppress(OSError, msgspec.DecodeError, ValueError):
            with open(self.path, "rb") as f:
                raw = f.read(_MAX_BYTES + 1)
            if len(raw) <= _MAX_BYTES:
                self.entries = msgspec.msgpack.decode(raw, type=dict[bytes, str])

    def index_files(self, blob_ids: set[bytes]) -> set[str]:
        return {self.entries[b] for b in blob_ids if b in self.entries}

    def remember(self, blobs: dict[bytes, str]) -> None:
        for blob_id, index_file in blobs.items():
            self.entries.pop(blob_id, None)
            self.entries[blob_id] = index_file  # newest last: the oldest go first
        overflow = len(self.entries) - MAX_BLOBS
        for blob_id in list(self.entries)[: max(overflow, 0)]:
            del self.entries[blob_id]
        self._changed = self._changed or bool(blobs)

    def save(self) -> None:
        if self._changed:
            write_private(self.path, msgspec.msgpack.encode(self.entries))
            self._changed = False
