"""How another process opens a repository's blob store (copy worker processes).

A spec carries the master key, so it is only ever sent to our own child
processes, through a pipe. The child opens the same location with default
backend options (callers use it for local repositories only).
"""

from __future__ import annotations

from dataclasses import dataclass

from amber.repository.blobstore import BlobStore
from amber.repository.crypto import MasterKey
from amber.storage.url import BackendOptions, open_backend


@dataclass(frozen=True)
class StoreSpec:
    location: str
    encrypt_key: bytes
    id_key: bytes
    compression_level: int

    @classmethod
    def of(cls, location: str, store: BlobStore) -> StoreSpec:
        key = store.key
        return cls(location, key.encrypt_key, key.id_key, store.codec.compression_level)

    def open(self, load_index: bool) -> BlobStore:
        backend = open_backend(self.location, BackendOptions())
        store = BlobStore(backend, MasterKey(self.encrypt_key, self.id_key), self.compression_level)
        if load_index:
            store.load_index()
        return store
