"""Upgrading a format-1 repository to format 2 in place (design §23); services/migrate.py drives it.

The first write turns ``config`` into version 2 with ``migrating``: from then on
every client writes bound objects and reads both formats, and clients that only
know format 1 refuse the repository. Each step then writes the format-2 object
before it removes the format-1 one (packs → index → snapshots → audit), so a
crash anywhere leaves a repository that opens, restores and takes backups, and
running the migration again continues where it stopped. ``migrating`` is cleared
last, and only when no format-1 object is left: nothing is ever stranded in a
format that the repository no longer reads.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from amber.errors import AmberError, IntegrityError, ObjectNotFound
from amber.repository.audit_store import AuditSegment, save_segment
from amber.repository.blobstore import BlobStore
from amber.repository.model import Snapshot, decode_snapshot
from amber.repository.pack import HEADER_LEN_SIZE, decode_header, header_length
from amber.repository.repo import Repository
from amber.repository.sealing import Kind
from amber.storage.base import FileType, Handle

_TAIL = 64 * 1024  # one ranged load reads most pack headers whole


@dataclass
class Survey:
    """What is still in format 1."""

    index_files: list[str] = field(default_factory=list)
    packs: dict[str, int] = field(default_factory=dict)  # listed by those index files: name -> size
    unindexed_packs: int = 0  # stored but in no index file: their headers tell
    snapshots: list[str] = field(default_factory=list)
    audit_segments: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # objects that open in neither format

    @property
    def done(self) -> bool:
        left = (self.index_files, self.packs, self.snapshots, self.audit_segments, self.unreadable)
        return not any(left)


@dataclass
class MigrationResult:
    packs_rewritten: int = 0
    bytes_rewritten: int = 0
    index_files_rewritten: int = 0
    snapshots_rewritten: dict[str, str] = field(default_factory=dict)  # old ID -> new ID
    audit_segments_rewritten: int = 0
    objects_removed: int = 0
    problems: list[str] = field(default_factory=list)  # what blocks the end of the migration


class Migrator:
    def __init__(self, repo: Repository, bytes_done: Callable[[int], None] = lambda n: None) -> None:
        self.repo = repo
        self.blobs = repo.blobs
        self.backend = repo.backend
        self.bytes_done = bytes_done

    # -- what is left ---------------------------------------------------------
    def survey(self) -> Survey:
        repo, blobs = self.repo, self.blobs
        old_format = repo.config.version == 1
        out = Survey()
        out.index_files = sorted(blobs.index_files if old_format else blobs.unbound_index_files)
        out.unreadable = [f"index/{name}" for name in repo.index_errors]
        stored = {fi.name: fi.size for fi in self.backend.list(FileType.PACK)}
        listed = {pack for name in out.index_files for pack in blobs.index_files.get(name, [])}
        out.packs = {pack: stored[pack] for pack in sorted(listed) if pack in stored}
        out.unindexed_packs = len(stored.keys() - blobs.index.packs())
        for name in repo.snapshot_names():
            bound = self._bound(FileType.SNAPSHOT, Kind.SNAPSHOT, name)
            if bound is None:
                out.unreadable.append(f"snapshots/{name}")
            elif not bound:
                out.snapshots.append(name)
        for fi in self.backend.list(FileType.AUDIT):
            bound = self._bound(FileType.AUDIT, Kind.AUDIT, fi.name)
            if bound is None:
                out.unreadable.append(f"audit/{fi.name}")
            elif not bound:
                out.audit_segments.append(fi.name)
        return out

    def _bound(self, type_: FileType, kind: Kind, name: str) -> bool | None:
        """Whether an object is in format 2; None if it opens in neither format."""
        try:
            raw = self.backend.load(Handle(type_, name))
            if hashlib.sha256(raw).hexdigest() != name:
                return None
            return self.repo.sealer.open_versioned(kind, raw)[1]
        except (IntegrityError, ObjectNotFound):
            return None

    # -- steps ----------------------------------------------------------------
    def start(self) -> None:
        """Announce the migration: version 2, both formats readable, new objects bound."""
        config = self.repo.config
        if config.version == 1:
            self.repo.save_config(msgspec.structs.replace(config, version=2, migrating=True))
            self.repo.load_index()  # now it tells which index files are still in format 1

    def packs_and_index(self, result: MigrationResult) -> None:
        """Each format-1 index file: its packs rewritten, the new index file (superseding it)
        written, then it and its packs removed."""
        for name in sorted(self.blobs.ignored_index_files):  # superseded leftovers of a crash
            self.blobs.remove_index_file(name)
            result.objects_removed += 1
        stored = {fi.name: fi.size for fi in self.backend.list(FileType.PACK)}
        remaining = sorted(self.blobs.unbound_index_files)
        listed = Counter(p for name in remaining for p in self.blobs.index_files.get(name, []))
        for name in remaining:
            self._migrate_index_file(name, stored, listed, result)

    def _migrate_index_file(
        self, name: str, stored: dict[str, int], listed: Counter[str], result: MigrationResult
    ) -> None:
        """``listed``: how many format-1 index files not yet migrated list each pack."""
        blobs = self.blobs
        store = BlobStore(self.backend, self.repo.key, blobs.compression_level, self.repo.sealer)
        rewritten: list[str] = []
        stuck = False
        packs = list(blobs.index_files.get(name, []))
        for pack in packs:
            if pack not in stored:
                result.problems.append(f"pack {pack[:16]} (in index {name[:16]}) is missing")
                stuck = True
                continue
            if self._rewrite_pack(pack, store, None, result):
                rewritten.append(pack)
            else:
                stuck = True
        pending = blobs.pending.get(name)
        if stuck or pending is not None:
            store.flush()
        if stuck:  # the new copies stay indexed; the old file and packs stay too
            result.problems.append(f"index {name[:16]} kept in format 1: `amber repair index`, then migrate")
            return
        if pending is not None:
            blobs.save_marker(pending.time, pending.packs, pending.holders)
        else:  # the last new index file names the old one: put back, it is ignored
            store.flush(supersedes=blobs.superseding([name]))
        result.index_files_rewritten += 1
        blobs.remove_index_file(name)
        result.objects_removed += 1
        for pack in packs:
            listed[pack] -= 1
        for pack in rewritten:
            if listed[pack] <= 0:
                self.backend.remove(Handle(FileType.PACK, pack))
                result.objects_removed += 1

    def _rewrite_pack(
        self, pack: str, store: BlobStore, skip: Callable[[bytes], bool] | None, result: MigrationResult
    ) -> bool:
        """Copy a pack's blobs (all, or those ``skip`` rejects) into ``store``, sealed in format 2.
        Every blob is verified on the way; False if any is damaged."""
        try:
            data, header = self.blobs.read_pack(pack)
        except AmberError as exc:
            result.problems.append(f"pack {pack[:16]}: {exc}")
            return False
        view = memoryview(data)
        ok = True
        for b in header:
            if skip is not None and skip(b.id):
                continue
            try:
                blob = store.codec.open(b.id, view[b.offset : b.offset + b.length], b.raw_length, b.type)
            except IntegrityError as exc:
                result.problems.append(f"pack {pack[:16]}: blob {b.id.hex()[:16]}: {exc}")
                ok = False
                continue
            store.save_encoded(b.type, b.id, blob)
        result.packs_rewritten += 1
        result.bytes_rewritten += len(data)
        self.bytes_done(len(data))
        return ok

    def unindexed_packs(self, result: MigrationResult) -> None:
        """Format-1 packs in no index file (left by a crash, here or in an earlier backup):
        blobs the index lacks are rewritten and indexed, then the pack is removed."""
        self.repo.load_index()
        stored = {fi.name: fi.size for fi in self.backend.list(FileType.PACK)}
        indexed = self.blobs.index.packs()
        for pack in sorted(stored.keys() - indexed):
            bound = self._pack_bound(pack, stored[pack])
            if bound is not False:
                continue  # format 2 (prune's business) or unreadable either way (check reports it)
            store = BlobStore(self.backend, self.repo.key, self.blobs.compression_level, self.repo.sealer)
            if self._rewrite_pack(pack, store, self.blobs.index.__contains__, result):
                store.flush()
                self.backend.remove(Handle(FileType.PACK, pack))
                result.objects_removed += 1
            else:
                store.flush()
        self.repo.load_index()

    def _pack_bound(self, pack: str, size: int) -> bool | None:
        sealer = self.repo.sealer
        found: list[bool] = []

        def opener(sealed: bytes) -> bytes:
            plain, bound = sealer.open_versioned(Kind.PACK_HEADER, sealed)
            found.append(bound)
            return plain

        try:
            tail = self.backend.load(Handle(FileType.PACK, pack), max(0, size - _TAIL))
            n = header_length(size, tail[-HEADER_LEN_SIZE:])
            if n + HEADER_LEN_SIZE > len(tail):
                tail = self.backend.load(Handle(FileType.PACK, pack), size - HEADER_LEN_SIZE - n)
            decode_header(tail[len(tail) - HEADER_LEN_SIZE - n : len(tail) - HEADER_LEN_SIZE], size, opener)
        except AmberError:
            return None
        return found[0]

    def snapshots(self, result: MigrationResult) -> None:
        """Each format-1 snapshot is written again (a new ID, ``original`` = its identity, ``parent``
        following its parent's new ID), then removed. A twin left by a crash is recognised."""
        repo = self.repo
        twins: dict[str, str] = {}  # identity -> format-2 snapshot
        old: dict[str, Snapshot] = {}
        for name in repo.snapshot_names():
            try:
                raw = self.backend.load(Handle(FileType.SNAPSHOT, name))
                if hashlib.sha256(raw).hexdigest() != name:
                    raise IntegrityError("content does not match its name")
                plain, bound = repo.sealer.open_versioned(Kind.SNAPSHOT, raw)
                snap = decode_snapshot(plain)
            except (IntegrityError, ObjectNotFound) as exc:
                result.problems.append(f"snapshot {name[:8]}: {exc}")
                continue
            if bound:
                twins[snap.original or name] = name
            else:
                old[name] = snap
        new_ids: dict[str, str] = {}
        for name in sorted(old, key=lambda n: (old[n].time, n)):
            self._rewrite_snapshot(name, old, twins, new_ids, result)

    def _rewrite_snapshot(
        self, name: str, old: dict[str, Snapshot], twins: dict[str, str], new_ids: dict[str, str],
        result: MigrationResult,
    ) -> str:  # fmt: skip
        if name in new_ids:
            return new_ids[name]
        snap = old[name]
        parent = snap.parent
        if parent in old:  # parents first, so the child can name the parent's new ID
            parent = self._rewrite_snapshot(parent, old, twins, new_ids, result)
        elif parent in twins:  # rewritten by an earlier, interrupted run
            parent = twins[parent]
        identity = snap.original or name
        new = twins.get(identity)
        if new is None:
            new = self.repo.save_snapshot(msgspec.structs.replace(snap, parent=parent, original=identity))
        new_ids[name] = new
        result.snapshots_rewritten[name] = new
        self.repo.remove_snapshot(name)
        result.objects_removed += 1
        return new

    def audit_segments(self, result: MigrationResult) -> None:
        """Each format-1 audit segment is written again and removed (records unchanged)."""
        segments: dict[tuple[str, int, int], list[tuple[str, AuditSegment, bool]]] = {}
        for fi in sorted(self.backend.list(FileType.AUDIT), key=lambda f: f.name):
            try:
                raw = self.backend.load(Handle(FileType.AUDIT, fi.name))
                if hashlib.sha256(raw).hexdigest() != fi.name:
                    raise IntegrityError("content does not match its name")
                plain, bound = self.repo.sealer.open_versioned(Kind.AUDIT, raw)
                seg = msgspec.msgpack.decode(plain, type=AuditSegment)
            except (IntegrityError, ObjectNotFound, msgspec.DecodeError, RecursionError) as exc:
                result.problems.append(f"audit segment {fi.name[:8]}: {exc}")
                continue
            key = (seg.log_id, seg.first_seq, len(seg.records))
            segments.setdefault(key, []).append((fi.name, seg, bound))
        for copies in segments.values():
            has_twin = any(bound for _, _, bound in copies)
            for name, seg, bound in copies:
                if bound:
                    continue
                if not has_twin:
                    save_segment(self.repo, seg)
                    result.audit_segments_rewritten += 1
                    has_twin = True
                self.backend.remove(Handle(FileType.AUDIT, name))
                result.objects_removed += 1

    def finish(self, result: MigrationResult) -> Survey:
        """Clear ``migrating`` if nothing in format 1 is left; return what is left."""
        self.repo.load_index()
        left = self.survey()
        if left.done and not result.problems and self.repo.config.migrating:
            self.repo.save_config(msgspec.structs.replace(self.repo.config, migrating=False))
        return left
