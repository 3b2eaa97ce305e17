"""Reading a repository's index files into one in-memory index (design §8)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from amber.errors import IntegrityError, ObjectNotFound
from amber.repository.index import Index, PendingDeletion, decode_index
from amber.repository.limits import OBJECT_LIMITS, data_blob_limit
from amber.repository.pack import pack_id
from amber.storage.base import Backend, FileType, Handle
from amber.storage.layout import too_large


@dataclass
class LoadedIndex:
    index: Index = field(default_factory=Index)
    files: dict[str, list[str]] = field(default_factory=dict)  # index file -> its packs
    pending: dict[str, PendingDeletion] = field(default_factory=dict)  # deletion markers by file
    failed: list[str] = field(default_factory=list)  # files that could not be read or decoded


def load_index_files(
    backend: Backend, decrypt: Callable[[bytes], bytes], max_data: int = data_blob_limit(8 << 20)
) -> LoadedIndex:
    """Every index file, merged.

    A file that vanishes between listing and loading was superseded by a
    concurrent prune, which writes the superseding file first: list again.
    A file over the size limit, or with a row over a blob limit, is one that
    failed (``max_data``: the largest data blob plaintext).
    """
    limit = OBJECT_LIMITS[FileType.INDEX]
    out = LoadedIndex()
    seen: set[str] = set()
    for _ in range(8):
        vanished = False
        for fi in backend.list(FileType.INDEX):
            if fi.name in seen:
                continue
            seen.add(fi.name)
            try:
                if fi.size > limit:  # the listing tells, without a request
                    raise too_large(Handle(FileType.INDEX, fi.name), limit, fi.size)
                raw = backend.load(Handle(FileType.INDEX, fi.name), limit=limit)
                if pack_id(raw) != fi.name:
                    raise IntegrityError("index content does not match its name")
                doc = decode_index(decrypt(raw), max_data)
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
