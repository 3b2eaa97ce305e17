"""Packs, index, encryption, keys and locks over a storage backend.

``crypto``, ``pack`` and ``index`` are internal; upper layers use
:class:`Repository`, the model types and :class:`BlobType`.
"""

from amber.repository.crypto import KdfParams
from amber.repository.index import Location
from amber.repository.model import Node, Snapshot, Summary, Tree
from amber.repository.pack import BlobType
from amber.repository.repo import Repository, init_repository, open_repository

__all__ = [
    "BlobType",
    "KdfParams",
    "Location",
    "Node",
    "Repository",
    "Snapshot",
    "Summary",
    "Tree",
    "init_repository",
    "open_repository",
]
