"""How another process opens a repository's blob store (copy worker processes).

A spec carries the master key, so it is only ever sent to our own child
processes, through a pipe. The child opens the same location with default
backend options (callers use it for local repositories only).
"""

from __future__ import annotations

from dataclasses import dataclass

from amber.repository.blobstore import BlobStore
from amber.repository.crypto import MasterKey
from amber.repository.sealing import Sealer
from amber.storage.url import BackendOptions, open_backend


@dataclass(frozen=True)
class StoreSpec:
    location: str
    encrypt_key: bytes
    id_key: bytes
    compression_level: int
    version: int  # format version and migration state (design §4): how objects are sealed
    max_data: int  # the largest data blob plaintext (limits.data_blob_limit)
    migrating: bool = False
    dropped_packs: tuple[str, ...] = ()  # indexed packs that are missing: not deduplicated against

    @classmethod
    def of(cls, location: str, store: BlobStore) -> StoreSpec:
        key = store.key
        sealer = store.sealer
        level = store.codec.compression_level
        return cls(
            location, key.encrypt_key, key.id_key, level, sealer.version, store.codec.max_data,
            sealer.migrating, tuple(store.dropped_packs),
        )  # fmt: skip

    def open(self, load_index: bool) -> BlobStore:
        backend = open_backend(self.location, BackendOptions())
        key = MasterKey(self.encrypt_key, self.id_key)
        sealer = Sealer(key, self.version, self.migrating)
        store = BlobStore(backend, key, self.compression_level, sealer, self.max_data)
        if load_index:
            store.load_index()
            store.drop_packs(list(self.dropped_packs))
        return store
