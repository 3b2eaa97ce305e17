"""The blob store's index: the index files it loaded or wrote, and their bookkeeping (design §8).

Loading, writing index files and deletion markers, ``supersedes``, and index
entries whose pack is missing. :class:`~amber.repository.blobstore.BlobStore`
adds blobs and packs on top.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable

from amber.errors import ObjectNotFound
from amber.repository.index import Index, PendingDeletion, encode_index, encode_marker
from amber.repository.indexfiles import carried_supersedes, load_index_files, load_index_files_except
from amber.repository.limits import data_blob_limit
from amber.repository.pack import PackedBlob, pack_id
from amber.repository.sealing import Kind, Sealer
from amber.storage.base import Backend, FileType, Handle


class IndexBook:
    def __init__(self, backend: Backend, sealer: Sealer, max_data: int = data_blob_limit(8 << 20)) -> None:
        self.backend = backend
        self.sealer = sealer
        self.max_data = max_data  # the largest data blob plaintext: index rows over it are refused
        self._lock = threading.Lock()
        self.index = Index()
        self.index_files: dict[str, list[str]] = {}  # loaded or written index file -> its packs
        self.pending: dict[str, PendingDeletion] = {}  # deletion markers by index file name
        self.unbound_index_files: set[str] = set()  # format-1 index files (while migrating)
        self.supersedes: dict[str, list[str]] = {}  # index file -> the files it replaces
        self.ignored_index_files: set[str] = set()  # present but superseded (§8)
        self.dropped_packs: list[str] = []  # indexed but not stored: ignored (§12)

    def load_index(self) -> list[str]:
        """Read every index file into a fresh index; return the names that failed to load."""
        loaded = load_index_files(self.backend, self.sealer, self.max_data)
        self.index, self.index_files, self.pending = loaded.index, loaded.files, loaded.pending
        self.unbound_index_files = loaded.unbound
        self.supersedes, self.ignored_index_files = loaded.supersedes, loaded.ignored
        self.dropped_packs = []
        return loaded.failed

    def load_new_index_files(self) -> list[str]:
        """Add the index files others wrote since this store loaded its index (a backup that
        ran during a prune) and return their names. Prune calls it before its second walk:
        a snapshot whose trees are only in such a file could not be walked otherwise, and
        its blobs in doomed packs would stay unindexed until the next prune (§13a)."""
        with self._lock:
            known = set(self.index_files) | self.ignored_index_files
            loaded = load_index_files_except(self.backend, self.sealer, known, self.index, self.max_data)
            self.index_files.update(loaded.files)
            self.pending.update(loaded.pending)
        return list(loaded.files)

    def load_named_index_files(self, names: set[str]) -> list[str]:
        """Add the rows of those of ``names`` that are stored now, and return them: a WAL push
        learns what exists from the few files its hints name instead of the whole index
        (design §12d). Call it holding a lock, so that a file found here is one a prune
        removes only after listing this process as a holder (§13a)."""
        if not names:
            return []
        with self._lock:
            known = set(self.index_files) | self.ignored_index_files
            loaded = load_index_files_except(
                self.backend, self.sealer, known, self.index, self.max_data, only=names
            )
            self.index_files.update(loaded.files)
        return list(loaded.files)

    def catch_up(self) -> bool:
        """Bring an index loaded earlier up to date after locking, for a repository kept open
        between runs (design §12c): load only the index files written since. False when that
        is not enough and the caller must reload everything: a file loaded earlier is gone (a
        prune or repair replaced it), or a new one supersedes others or cannot be read."""
        if self.index_superseded():
            return False
        with self._lock:
            known = set(self.index_files) | self.ignored_index_files
            loaded = load_index_files_except(self.backend, self.sealer, known, self.index, self.max_data)
            self.index_files.update(loaded.files)
            self.pending.update(loaded.pending)
        return not (loaded.failed or loaded.supersedes or loaded.unbound)

    def drop_packs(self, packs: list[str]) -> None:
        """Index entries in these (missing) packs no longer count: not for dedup, not for loads."""
        self.dropped_packs = packs
        if packs:
            self.index.remove_packs(set(packs))

    def index_superseded(self) -> bool:
        """True when an index file loaded earlier is gone (a prune replaced it)."""
        if not self.index_files:
            return False
        present = {fi.name for fi in self.backend.list(FileType.INDEX)}
        return any(name not in present for name in self.index_files)

    def save_index_file(self, packs: dict[str, list[PackedBlob]], supersedes: Iterable[str] = ()) -> str:
        """Write one index file for ``packs`` (already saved) and index them.

        Only the last file of a set that replaces others names them in
        ``supersedes`` (:meth:`superseding`): readers ignore a superseded file.
        """
        supersedes = list(supersedes)
        data = self.sealer.seal(Kind.INDEX, encode_index(packs, supersedes))
        name = pack_id(data)
        self.backend.save(Handle(FileType.INDEX, name), data)
        with self._lock:
            for pack, blobs in packs.items():
                self.index.add_pack(pack, blobs)
            self.index_files[name] = list(packs)
            if supersedes:
                self.supersedes[name] = supersedes
        return name

    def superseding(self, replaced: Iterable[str]) -> list[str]:
        """The ``supersedes`` list for the last index file replacing ``replaced`` (§8)."""
        return carried_supersedes(replaced, self.supersedes)

    def save_marker(self, mark_time: float, packs: list[str], holders: list[tuple[str, int, float]]) -> str:
        """Record packs for deletion (prune phase 1) in a deletion marker; return its name."""
        pending = PendingDeletion(mark_time, packs, holders)
        data = self.sealer.seal(Kind.INDEX, encode_marker(pending))
        name = pack_id(data)
        self.backend.save(Handle(FileType.INDEX, name), data)
        self.index_files[name] = []
        self.pending[name] = pending
        return name

    def remove_index_file(self, name: str) -> None:
        with contextlib.suppress(ObjectNotFound):
            self.backend.remove(Handle(FileType.INDEX, name))
        self.index_files.pop(name, None)
        self.pending.pop(name, None)
        self.supersedes.pop(name, None)
