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
    max_data: int  # the largest data blob plaintext (limits.data_blob_limit)

    @classmethod
    def of(cls, location: str, store: BlobStore) -> StoreSpec:
        key = store.key
        return cls(location, key.encrypt_key, key.id_key, store.codec.compression_level, store.codec.max_data)

    def open(self, load_index: bool) -> BlobStore:
        backend = open_backend(self.location, BackendOptions())
        key = MasterKey(self.encrypt_key, self.id_key)
        store = BlobStore(backend, key, self.compression_level, self.max_data)
        if load_index:
            store.load_index()
        return store
