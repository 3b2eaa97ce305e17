"""Sealing encoded blobs in batches (copy): one locked section reserves slots for many blobs."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import zstandard

from amber.repository.blobstore import BlobStore
from amber.repository.codec import EncodedBlob
from amber.repository.crypto import MasterKey
from amber.repository.pack import BlobType
from amber.repository.packer import Packer
from amber.storage.base import FileType
from amber.storage.local import LocalBackend

KEY = MasterKey(bytes(range(32)), bytes(range(32, 64)))
D = BlobType.DATA


def _store(tmp_path: Path, packer: Packer | None = None) -> tuple[BlobStore, LocalBackend]:
    backend = LocalBackend(str(tmp_path / "repo"))
    backend.create()
    store = BlobStore(backend, KEY)
    if packer is not None:
        store._packer = packer
    return store, backend


def _encoded(plain: bytes, compress: bool = False) -> tuple[bytes, EncodedBlob]:
    if compress:
        return KEY.blob_id(plain), EncodedBlob(zstandard.ZstdCompressor().compress(plain), len(plain), plain)
    return KEY.blob_id(plain), EncodedBlob(plain, 0, plain)


def _reopened(backend: LocalBackend) -> BlobStore:
    fresh = BlobStore(backend, KEY)
    assert fresh.load_index() == []
    return fresh


def test_a_batch_stores_each_new_blob_once(tmp_path: Path) -> None:
    store, backend = _store(tmp_path)
    old = _encoded(b"stored before " * 20)
    assert store.save_encoded(D, *old)
    store.flush()
    a, b = _encoded(b"alpha " * 300, compress=True), _encoded(os.urandom(3000))
    assert store.save_encoded_many(D, [a, old, b, a]) == [True, False, True, False]
    assert store.save_encoded_many(D, []) == []
    store.flush()
    fresh = _reopened(backend)
    for blob_id, blob in (old, a, b):
        assert fresh.load(blob_id) == blob.plain
    assert fresh.index.lookup(a[0]).raw_length == len(a[1].plain)  # sealed as compressed
    assert store.stats.data_blobs == 3


def test_a_batch_larger_than_the_free_buffers_fills_what_it_holds_before_waiting(tmp_path: Path) -> None:
    """With every buffer in use and slots still unfilled, waiting would deadlock: the
    packs holding the buffers wait for those very slots."""
    store, backend = _store(tmp_path, Packer(target=300, headroom=200, max_buffers=2))
    blobs = [_encoded(os.urandom(100 + i)) for i in range(60)]  # ~20 packs
    result: list[list[bool]] = []
    worker = threading.Thread(target=lambda: result.append(store.save_encoded_many(D, blobs)), daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "batch sealing deadlocked"
    assert result == [[True] * 60]
    store.flush()
    assert len(list(backend.list(FileType.PACK))) >= 10
    fresh = _reopened(backend)
    for blob_id, blob in blobs:
        assert fresh.load(blob_id) == blob.plain


class _Boom(Exception):
    pass


class _FailsOnThird(MasterKey):
    calls = 0

    def encrypt_into(self, plaintext: bytes | memoryview, out: memoryview, ad: bytes | None = None) -> None:
        type(self).calls += 1
        if type(self).calls == 3:
            raise _Boom
        super().encrypt_into(plaintext, out, ad)


def test_a_slot_that_cannot_be_filled_poisons_the_batch(tmp_path: Path) -> None:
    store, backend = _store(tmp_path)
    store.sealer.key = _FailsOnThird(KEY.encrypt_key, KEY.id_key)
    with pytest.raises(_Boom):
        store.save_encoded_many(D, [_encoded(os.urandom(500 + i)) for i in range(6)])
    store.sealer.key = KEY
    with pytest.raises(_Boom):
        store.flush()
    assert list(backend.list(FileType.PACK)) == []
    assert list(backend.list(FileType.INDEX)) == []
