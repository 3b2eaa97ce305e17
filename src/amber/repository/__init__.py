"""Packs, index, encryption, keys and locks over a storage backend.

``crypto``, ``pack`` and ``index`` are internal; upper layers use
:class:`Repository`, the model types and :class:`BlobType`.
"""

from amber.repository.crypto import KdfParams
from amber.repository.index import Location
from amber.repository.model import Node, Snapshot, Summary, Tree
from amber.repository.pack import BlobType, PackedBlob
from amber.repository.repo import Repository, init_repository, open_repository
from amber.repository.storespec import StoreSpec

__all__ = [
    "BlobType",
    "KdfParams",
    "Location",
    "Node",
    "PackedBlob",
    "Repository",
    "Snapshot",
    "StoreSpec",
    "Summary",
    "Tree",
    "init_repository",
    "open_repository",
]
