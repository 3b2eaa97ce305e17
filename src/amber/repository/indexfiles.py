"""Reading a repository's index files into one in-memory index (design §8)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from amber.errors import IntegrityError, ObjectNotFound
from amber.repository.index import Index, PendingDeletion, decode_index
from amber.repository.limits import OBJECT_LIMITS, data_blob_limit
from amber.repository.pack import pack_id
from amber.repository.sealing import Kind, Sealer
from amber.storage.base import Backend, FileType, Handle
from amber.storage.layout import too_large

MAX_SUPERSEDES = 1000  # names one index file carries forward (about 66 KB)


@dataclass
class LoadedIndex:
    index: Index = field(default_factory=Index)
    files: dict[str, list[str]] = field(default_factory=dict)  # index file -> its packs
    pending: dict[str, PendingDeletion] = field(default_factory=dict)  # deletion markers by file
    failed: list[str] = field(default_factory=list)  # files that could not be read or decoded
    unbound: set[str] = field(default_factory=set)  # files still in format 1 (while migrating)
    supersedes: dict[str, list[str]] = field(default_factory=dict)  # file -> the files it replaces
    ignored: set[str] = field(default_factory=set)  # present, but superseded by a loaded file


def load_index_files(
    backend: Backend, sealer: Sealer, max_data: int = data_blob_limit(8 << 20)
) -> LoadedIndex:
    """Every index file that no other loaded file supersedes, merged.

    A superseded file is still present only after a crash between writing its
    replacement and removing it, or when someone put it back: its rows may point
    to deleted packs, so it is ignored. Finding one costs a second pass (rare).
    Only format-2 files are followed: format 1 wrote ``supersedes`` into every file
    of a replacement, so one written before a crash did not mean it was complete.
    A file over the size limit, or with a row over a blob limit (``max_data``: the
    largest data blob plaintext), is one that failed (design §3).
    """
    out = _load(backend, sealer, set(), max_data)
    replaced = {name for names in out.supersedes.values() for name in names}
    ignored = replaced & (out.files.keys() | set(out.failed))
    if ignored:
        out = _load(backend, sealer, ignored, max_data)
        out.ignored = ignored
    return out


def load_index_files_except(
    backend: Backend, sealer: Sealer, known: set[str], into: Index, max_data: int,
    only: set[str] | None = None,
) -> LoadedIndex:  # fmt: skip
    """The index files not in ``known`` (written by others since), their rows added to ``into``;
    with ``only``, just those of these that are stored."""
    return _load(backend, sealer, known, max_data, into, only)


def _load(
    backend: Backend, sealer: Sealer, skip: set[str], max_data: int, into: Index | None = None,
    only: set[str] | None = None,
) -> LoadedIndex:  # fmt: skip
    """A file that vanishes between listing and loading was superseded by a
    concurrent prune, which writes the superseding file first: list again."""
    limit = OBJECT_LIMITS[FileType.INDEX]
    out = LoadedIndex() if into is None else LoadedIndex(index=into)
    seen: set[str] = set(skip)
    rows = _RowBuffer(out.index)
    for _ in range(8):
        vanished = False
        for fi in backend.list(FileType.INDEX):
            if fi.name in seen or (only is not None and fi.name not in only):
                continue
            seen.add(fi.name)
            try:
                if fi.size > limit:  # the listing tells, without a request
                    raise too_large(Handle(FileType.INDEX, fi.name), limit, fi.size)
                raw = backend.load(Handle(FileType.INDEX, fi.name), limit=limit)
                if pack_id(raw) != fi.name:
                    raise IntegrityError("index content does not match its name")
                plain, bound = sealer.open_versioned(Kind.INDEX, raw)
                doc = decode_index(plain, max_data)
            except ObjectNotFound:
                vanished = True
                continue
            except IntegrityError:
                out.failed.append(fi.name)
                continue
            rows.add(doc.packs)
            out.files[fi.name] = [pack for pack, _ in doc.packs]
            if doc.supersedes and bound:  # format 1 named the replaced files in every new
                out.supersedes[fi.name] = doc.supersedes  # file, even before the set was complete
            if doc.pending is not None:
                out.pending[fi.name] = doc.pending
            if sealer.bound and not bound:
                out.unbound.add(fi.name)
            del doc
        rows.flush()
        if not vanished:
            break
    return out


class _RowBuffer:
    """Index rows of several files, added to the index in one pass once there are enough."""

    FLUSH_ROWS = 1 << 17  # about 20 MiB of rows held

    def __init__(self, index: Index) -> None:
        self._index = index
        self._packs: list[tuple[str, list[tuple[int, bytes, int, int, int]]]] = []
        self._rows = 0

    def add(self, packs: list[tuple[str, list[tuple[int, bytes, int, int, int]]]]) -> None:
        self._packs += packs
        self._rows += sum(len(rows) for _, rows in packs)
        if self._rows >= self.FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        packs, self._packs, self._rows = self._packs, [], 0
        self._index.add_packs(packs)


def carried_supersedes(replaced: Iterable[str], supersedes: dict[str, list[str]]) -> list[str]:
    """What the last file replacing ``replaced`` lists: those files and what they listed
    themselves, so an older file put back stays ignored for many generations (bounded)."""
    names = list(dict.fromkeys(replaced))
    inherited = dict.fromkeys(n for name in names for n in supersedes.get(name, ()))
    return list(dict.fromkeys([*names, *inherited]))[:MAX_SUPERSEDES]
