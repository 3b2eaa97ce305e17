"""Reading a repository's index files into one in-memory index (design §8)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from amber.errors import IntegrityError, ObjectNotFound
from amber.repository.index import Index, PendingDeletion, decode_index
from amber.repository.pack import pack_id
from amber.storage.base import Backend, FileType, Handle


@dataclass
class LoadedIndex:
    index: Index = field(default_factory=Index)
    files: dict[str, list[str]] = field(default_factory=dict)  # index file -> its packs
    pending: dict[str, PendingDeletion] = field(default_factory=dict)  # deletion markers by file
    failed: list[str] = field(default_factory=list)  # files that could not be read or decoded


def load_index_files(backend: Backend, decrypt: Callable[[bytes], bytes]) -> LoadedIndex:
    """Every index file, merged.

    A file that vanishes between listing and loading was superseded by a
    concurrent prune, which writes the superseding file first: list again.
    """
    out = LoadedIndex()
    seen: set[str] = set()
    for _ in range(8):
        vanished = False
        for fi in backend.list(FileType.INDEX):
            if fi.name in seen:
                continue
            seen.add(fi.name)
            try:
                raw = backend.load(Handle(FileType.INDEX, fi.name))
                if pack_id(raw) != fi.name:
                    raise IntegrityError("index content does not match its name")
                doc = decode_index(decrypt(raw))
            except ObjectNotFound:
                vanished = True
                continue
            except IntegrityError:
                out.failed.append(fi.name)
                continue
            for pack, rows in doc.packs:
                out.index.add_rows(pack, rows)
            out.files[fi.name] = [pack for pack, _ in doc.packs]
            if doc.pending is not None:
                out.pending[fi.name] = doc.pending
            del doc
        if not vanished:
            break
    return out
