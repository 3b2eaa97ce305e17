"""What each sealed object is bound to: its kind and, for blobs, its ID (design §4).

From format version 2 on, every object sealed with the master key carries
``b"amber\\0" + kind + b"\\0" + name`` as AEAD associated data. An object read
as another kind, or a blob read under another ID or type, fails authentication:
a data blob cut from a pack and written over ``config`` is rejected.

Objects named by the SHA-256 of their sealed bytes (snapshots, index files,
locks, audit segments, packs) cannot carry their own name, which is only known
after sealing; the reader checks that name against the bytes instead.

Version 1 sealed without associated data. A :class:`Sealer` follows the
repository's version: version 1 reads and writes unbound objects; version 2
reads and writes bound ones; while ``amber migrate`` upgrades a repository
(version 2, ``migrating``), it writes bound objects and reads both.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from amber.errors import IntegrityError
from amber.repository.crypto import MasterKey
from amber.repository.pack import BlobType

FORMAT_VERSION = 3  # what new repositories get (3: WAL records reference data blobs, design §23)
SUPPORTED_VERSIONS = (1, 2, 3)


class Kind(enum.Enum):
    CONFIG = "config"
    SNAPSHOT = "snapshot"
    INDEX = "index"  # index files and deletion markers
    LOCK = "lock"
    AUDIT = "audit"  # audit-log segments
    RUNS = "runs"  # run records (fleet view)
    PACK_HEADER = "pack-header"
    DATA = "data"  # data blobs: the name is the blob ID
    TREE = "tree"  # tree blobs: the name is the blob ID
    WAL = "wal"  # archived WAL files: the name is the object name (cluster and WAL file name)


_PREFIX = {kind: b"amber\0" + kind.value.encode() + b"\0" for kind in Kind}
BLOB_KIND = {BlobType.DATA: Kind.DATA, BlobType.TREE: Kind.TREE}


def associated_data(kind: Kind, name: bytes = b"") -> bytes:
    return _PREFIX[kind] + name


class Sealer:
    """Seals and opens a repository's objects under its format version.

    One instance is shared by everything that reads or writes a repository, so
    :meth:`set_format` switches them all at once (migration).
    """

    __slots__ = ("key", "migrating", "version")

    def __init__(self, key: MasterKey, version: int = FORMAT_VERSION, migrating: bool = False) -> None:
        self.key = key
        self.version = version
        self.migrating = migrating

    def set_format(self, version: int, migrating: bool = False) -> None:
        self.version = version
        self.migrating = migrating

    @property
    def bound(self) -> bool:
        """True when objects are written with associated data."""
        return self.version >= 2

    def _ad(self, kind: Kind, name: bytes) -> bytes | None:
        return associated_data(kind, name) if self.version >= 2 else None

    def seal(self, kind: Kind, plaintext: bytes | memoryview, name: bytes = b"") -> bytes:
        return self.key.encrypt(plaintext, self._ad(kind, name))

    def seal_into(
        self, kind: Kind, plaintext: bytes | memoryview, out: memoryview, name: bytes = b""
    ) -> None:
        self.key.encrypt_into(plaintext, out, self._ad(kind, name))

    def open(self, kind: Kind, sealed: bytes | memoryview, name: bytes = b"") -> bytes:
        if self.version >= 2 and not self.migrating:  # the common case, once per blob read
            return self.key.decrypt(sealed, _PREFIX[kind] + name)
        return self.open_versioned(kind, sealed, name)[0]

    def open_versioned(self, kind: Kind, sealed: bytes | memoryview, name: bytes = b"") -> tuple[bytes, bool]:
        """(plaintext, whether it was bound): bound objects are already in format 2."""
        ad = self._ad(kind, name)
        if ad is None:
            return self.key.decrypt(sealed), False
        try:
            return self.key.decrypt(sealed, ad), True
        except IntegrityError:
            if not self.migrating:
                raise
        return self.key.decrypt(sealed), False

    def open_into(self, kind: Kind, sealed: bytes | memoryview, out: memoryview, name: bytes = b"") -> None:
        ad = self._ad(kind, name)
        if ad is None:
            self.key.decrypt_into(sealed, out)
            return
        try:
            self.key.decrypt_into(sealed, out, ad)
        except IntegrityError:
            if not self.migrating:
                raise
            self.key.decrypt_into(sealed, out)

    # -- helpers for the two encoders that take plain callables ------------
    def sealer_for(self, kind: Kind) -> Callable[[bytes], bytes]:
        return lambda plaintext: self.seal(kind, plaintext)

    def opener_for(self, kind: Kind) -> Callable[[bytes], bytes]:
        return lambda sealed: self.open(kind, sealed)
