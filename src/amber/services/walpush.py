"""Pushing WAL files: content into data blobs, then a record per file (design §12d).

One call pushes a batch (one file from ``archive_command``, or every file PostgreSQL
has ready with ``--async``) under one shared lock, in the order of §11: the packs of
the new blobs, then their index file, then the records; each save is atomic and
synced, so a record exists only when everything it names is durable. A format-2
repository gets the file sealed whole instead (its clients would not know that a
record keeps blobs alive).

Deduplication without loading the index (design §12d, "What a push knows"): within
the batch, and against the blobs of earlier pushes remembered in a local hint file
(:mod:`amber.services.walhints`), checked against the repository under the lock.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from amber.engine.chunker import Chunker
from amber.errors import AmberError, ObjectNotFound, UsageError, WalConflict
from amber.repository import BlobType, Repository
from amber.repository.walstore import BlobRef, WalRecord, WalStore
from amber.services import walnames
from amber.services.walhints import WalHints
from amber.storage.base import FileType, Handle


@dataclass
class Pushed:
    """One file of a batch: stored now, already archived (same content), or why it failed."""

    path: str
    name: str = ""  # the object name, <cluster>.<file>
    stored: bool = False
    error: AmberError | None = None
    size: int = 0  # of the content now archived under the name (when error is None)
    sha256: bytes = b""


def read_wal(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc


def push_files(repo: Repository, cluster: str, paths: list[str], use_hints: bool = True) -> list[Pushed]:
    """Archive each file; a failure of one (a conflict, an unreadable file) is reported in its
    :class:`Pushed` and the others go on. Storage errors raise: nothing is claimed durable."""
    batch = [Pushed(p) for p in paths]
    for item in batch:
        try:
            item.name = walnames.object_name(cluster, os.path.basename(item.path))
        except UsageError as exc:
            item.error = exc
    store = WalStore(repo)
    todo = [item for item in batch if item.error is None]
    if not store.writes_records:
        for item in todo:
            try:
                data = read_wal(item.path)
                item.stored = store.put(item.name, data)
                item.size, item.sha256 = len(data), hashlib.sha256(data).digest()
            except (UsageError, WalConflict) as exc:
                item.error = exc
        return batch
    with repo.lock():  # a prune that marks packs meanwhile waits for us, then sees our records (§13a)
        WalWriter(repo, store, WalHints(repo.id) if use_hints else None).push(todo)
    return batch


class WalWriter:
    """Blobs for a batch of WAL files, then their records. The caller holds a lock on ``repo``;
    a repository whose index is loaded (copy) deduplicates against all of it."""

    def __init__(self, repo: Repository, store: WalStore, hints: WalHints | None) -> None:
        cfg = repo.config
        self.repo, self.store, self.hints = repo, store, hints
        self.chunker = Chunker(cfg.chunk_avg, cfg.chunk_min, cfg.chunk_max, repo.key.chunker_seed)
        self.loaded: set[str] = set()  # hinted index files already looked at
        self.checked_packs: set[str] = set()
        self.written: set[bytes] = set()

    def push(self, todo: list[Pushed]) -> None:
        records: list[tuple[str, int, bytes, list[bytes]]] = []
        for item in todo:
            self.repo.cancel.check()
            try:
                data = read_wal(item.path)
                digest = hashlib.sha256(data).digest()
                have = self.store.archived_digest(item.name)
                if have is not None and have != digest:
                    raise WalConflict(f"{item.name} is already archived with different content")
            except (UsageError, WalConflict) as exc:
                item.error = exc
                continue
            item.size, item.sha256 = len(data), digest
            if have is None:
                records.append((item.name, len(data), digest, self.add(data)))
                item.stored = True
        self.commit(records)

    def add(self, data: bytes) -> list[bytes]:
        """Store the chunks of ``data`` the repository lacks; their IDs in order."""
        key, blobs = self.repo.key, self.repo.blobs
        chunks = [(key.blob_id(c), c) for c in self.chunker.chunks(data)]
        if self.hints is not None:
            self._learn({blob_id for blob_id, _ in chunks})
        for blob_id, chunk in chunks:
            if blobs.save(BlobType.DATA, chunk, blob_id):
                self.written.add(blob_id)
        return [blob_id for blob_id, _ in chunks]

    def _learn(self, wanted: set[bytes]) -> None:
        """Index the hinted files naming ``wanted`` blobs, and forget packs that are not stored."""
        assert self.hints is not None
        files = self.hints.index_files(wanted - self.written) - self.loaded
        if not files:
            return
        self.loaded |= files
        self.repo.blobs.load_named_index_files(files)
        index = self.repo.blobs.index
        found = {loc.pack for b in wanted - self.written if (loc := index.lookup(b)) is not None}
        packs = found - self.checked_packs
        missing = []
        for pack in sorted(packs):
            try:
                self.repo.backend.stat(Handle(FileType.PACK, pack))
            except ObjectNotFound:
                missing.append(pack)
        self.checked_packs |= packs
        if missing:
            self.repo.blobs.drop_packs(missing)

    def commit(self, records: list[tuple[str, int, bytes, list[bytes]]]) -> None:
        """Packs, then their index file, then the records (§11)."""
        blobs = self.repo.blobs
        before = set(blobs.index_files)
        blobs.flush()
        new_files = set(blobs.index_files) - before
        pack_file = {pack: name for name in new_files for pack in blobs.index_files[name]}
        remembered: dict[bytes, str] = {}
        for name, size, digest, ids in records:
            refs = []
            for blob_id in ids:
                loc = blobs.locate(blob_id)
                refs.append(BlobRef(blob_id, loc.pack, loc.offset, loc.length, loc.raw_length))
                if self.hints is not None:
                    file = pack_file.get(loc.pack) or _file_of(blobs.index_files, loc.pack)
                    if file:
                        remembered[blob_id] = file
            self.store.save_record(name, WalRecord(size, digest, tuple(refs)))
        if self.hints is not None:
            self.hints.remember(remembered)
            self.hints.save()


def _file_of(index_files: dict[str, list[str]], pack: str) -> str:
    return next((name for name, packs in index_files.items() if pack in packs), "")
