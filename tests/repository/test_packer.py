"""Pack assembly (pure) and the blob store's writes through it.

The packer decides where each sealed blob goes and when a pack is complete;
the store seals blobs straight into those slots from many threads. A pack with
a slot that could not be filled, or that could not be saved, must never
reach an index.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from amber.buffers import lazy_buffer
from amber.errors import DiskFull, StorageError
from amber.repository.blobstore import BlobStore
from amber.repository.crypto import OVERHEAD, MasterKey
from amber.repository.pack import BlobType, parse_pack
from amber.repository.packer import OpenPack, Packer
from amber.repository.sealing import Kind
from amber.storage.base import FileType, Handle
from amber.storage.local import LocalBackend

KEY = MasterKey(bytes(range(32)), bytes(range(32, 64)))
D, T = BlobType.DATA, BlobType.TREE


def _id(n: int) -> bytes:
    return n.to_bytes(32, "big")


# -- the pure packer --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sizes", "closed_after"),
    [
        ([40, 40, 30], [False, False, True]),  # reaches the target (100) on the third blob
        ([100], [True]),  # one blob the size of the target
        ([10] * 9, [False] * 9),  # below the target: stays open
        ([99, 1], [False, True]),
    ],
)
def test_pack_closes_once_it_reaches_the_target(sizes: list[int], closed_after: list[bool]) -> None:
    packer = Packer(target=100, headroom=60)
    for i, (size, closed) in enumerate(zip(sizes, closed_after, strict=True)):
        pack, offset, ready = packer.reserve(D, _id(i), size, 0)
        assert offset == sum(sizes[:i])
        assert ready is None
        assert pack.closed is closed
        assert packer.filled(pack) is closed  # the only writer: ready once closed


def test_slots_are_contiguous_and_recorded_in_order() -> None:
    packer = Packer(target=100, headroom=60)
    slots = [packer.reserve(D, _id(i), size, size * 2) for i, size in enumerate([5, 7, 11])]
    pack = slots[0][0]
    assert all(s[0] is pack for s in slots)
    assert [(b.id, b.offset, b.length, b.raw_length) for b in pack.blobs] == [
        (_id(0), 0, 5, 10), (_id(1), 5, 7, 14), (_id(2), 12, 11, 22),
    ]  # fmt: skip
    assert pack.used == 23


def test_a_closed_pack_is_ready_only_when_its_last_slot_is_filled() -> None:
    packer = Packer(target=100, headroom=60)
    a, _, _ = packer.reserve(D, _id(1), 50, 0)
    b, _, _ = packer.reserve(D, _id(2), 60, 0)  # closes the pack with two unfilled slots
    assert a is b and a.closed and not a.ready
    assert packer.filled(a) is False
    assert packer.filled(a) is True


def test_types_have_separate_packs() -> None:
    packer = Packer(target=100, headroom=60)
    data, _, _ = packer.reserve(D, _id(1), 10, 0)
    tree, _, _ = packer.reserve(T, _id(2), 10, 0)
    assert data is not tree
    assert [b.type for b in data.blobs] == [D] and [b.type for b in tree.blobs] == [T]


def test_a_blob_that_does_not_fit_closes_the_open_pack_and_hands_it_over_when_complete() -> None:
    packer = Packer(target=100, headroom=60)  # capacity 160
    first, _, _ = packer.reserve(D, _id(1), 90, 0)
    packer.filled(first)
    second, offset, ready = packer.reserve(D, _id(2), 150, 0)  # 90 + 150 > 160
    assert ready is first and first.closed
    assert second is not first and offset == 0


def test_a_blob_larger_than_the_capacity_gets_its_own_buffer_which_is_not_pooled() -> None:
    packer = Packer(target=100, headroom=60)
    pack, offset, _ = packer.reserve(T, _id(1), 500, 0)
    assert offset == 0 and len(pack.buffer) == 500 and pack.closed
    packer.filled(pack)
    packer.recycle(pack)
    normal, _, _ = packer.reserve(T, _id(2), 10, 0)
    assert len(normal.buffer) == 160


def test_buffers_are_reused_after_a_pack_is_written() -> None:
    packer = Packer(target=100, headroom=60)
    pack, _, _ = packer.reserve(D, _id(1), 100, 0)
    packer.filled(pack)
    buffer = pack.buffer
    packer.recycle(pack)
    again, _, _ = packer.reserve(D, _id(2), 10, 0)
    assert again.buffer is buffer


def test_close_all_returns_the_complete_packs_and_leaves_the_rest_to_their_writers() -> None:
    packer = Packer(target=100, headroom=60)
    data, _, _ = packer.reserve(D, _id(1), 10, 0)
    packer.filled(data)
    tree, _, _ = packer.reserve(T, _id(2), 10, 0)  # still being written
    assert packer.close_all() == [data]
    assert tree.closed and packer.filled(tree) is True
    fresh, _, _ = packer.reserve(D, _id(3), 10, 0)
    assert fresh is not data


# -- the store ----------------------------------------------------------------------------------
def _store(tmp_path: Path) -> tuple[BlobStore, LocalBackend]:
    backend = LocalBackend(str(tmp_path / "repo"))
    backend.create()
    return BlobStore(backend, KEY), backend


def test_threads_filling_packs_side_by_side_store_every_blob_intact(tmp_path: Path) -> None:
    store, backend = _store(tmp_path)
    blobs = [os.urandom(n) for n in [1, 100, 70_000, 1 << 20, 3 << 20, 8 << 20] * 8]

    def work(part: list[bytes]) -> None:
        for data in part:
            store.save(D, data)

    threads = [threading.Thread(target=work, args=(blobs[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.flush()
    packs = list(backend.list(FileType.PACK))
    assert len(packs) >= 3
    for fi in packs:  # every pack parses and is at least the target size but the last of each type
        data = backend.load(Handle(FileType.PACK, fi.name))
        assert all(b.length > OVERHEAD for b in parse_pack(data, store.sealer.opener_for(Kind.PACK_HEADER)))
    fresh = BlobStore(backend, KEY)
    assert fresh.load_index() == []
    for data in blobs:
        assert fresh.load(KEY.blob_id(data)) == data
    sizes = sorted(fi.size for fi in packs)
    assert all(size >= 16 << 20 for size in sizes[1:])  # only the last, flushed pack is short


class _FailingPackSaves(LocalBackend):
    def save(self, handle: Handle, data: bytes | bytearray | memoryview) -> None:
        if handle.type is FileType.PACK:
            raise DiskFull("disk full writing a pack")
        super().save(handle, data)


def test_a_failed_pack_write_fails_every_later_save_and_the_flush(tmp_path: Path) -> None:
    backend = _FailingPackSaves(str(tmp_path / "repo"))
    backend.create()
    store = BlobStore(backend, KEY)
    with pytest.raises(DiskFull):
        for _ in range(40):
            store.save(D, os.urandom(1 << 20))
    with pytest.raises(DiskFull):
        store.save(D, os.urandom(100))
    with pytest.raises(DiskFull):
        store.flush()
    assert list(backend.list(FileType.INDEX)) == []  # no index can reference the lost blobs


class _Boom(Exception):
    pass


class _FailingKey(MasterKey):
    def encrypt_into(self, plaintext: bytes | memoryview, out: memoryview, ad: bytes | None = None) -> None:
        raise _Boom


def test_a_blob_that_cannot_be_sealed_poisons_its_pack(tmp_path: Path) -> None:
    store, backend = _store(tmp_path)
    store.save(D, b"kept " * 100)

    store.sealer.key = _FailingKey(KEY.encrypt_key, KEY.id_key)
    with pytest.raises(_Boom):
        store.save(D, b"lost " * 100)
    store.sealer.key = KEY
    with pytest.raises(_Boom):
        store.flush()
    assert list(backend.list(FileType.PACK)) == []
    assert list(backend.list(FileType.INDEX)) == []


def test_interrupted_sealing_is_reported_as_a_storage_error(tmp_path: Path) -> None:
    store, _ = _store(tmp_path)
    store._failed = KeyboardInterrupt()
    with pytest.raises(StorageError):
        store.flush()


def test_open_pack_starts_empty() -> None:
    pack = OpenPack(D, lazy_buffer(10))
    assert (pack.used, pack.writers, pack.closed, pack.poisoned, pack.ready) == (0, 0, False, False, False)


def test_a_new_pack_waits_for_a_free_buffer_but_an_open_pack_never_does() -> None:
    packer = Packer(target=100, headroom=60, max_buffers=2)
    data, _, _ = packer.reserve(D, _id(1), 100, 0)  # closes at once: being saved
    packer.reserve(T, _id(2), 10, 0)  # open
    assert packer.live == 2
    assert packer.must_wait(D)  # a new data pack needs a third buffer
    assert not packer.must_wait(T)  # the open tree pack takes more blobs
    packer.filled(data)
    packer.recycle(data)
    assert packer.live == 1 and not packer.must_wait(D)
    again, _, _ = packer.reserve(D, _id(3), 10, 0)
    assert again.buffer is data.buffer and packer.live == 2


def test_packs_of_many_small_blobs_are_indexed_without_waiting_for_sixteen_packs(tmp_path: Path) -> None:
    store, backend = _store(tmp_path)
    blob = 1024
    per_pack = (16 << 20) // (blob + OVERHEAD) + 1
    for _ in range(2 * per_pack + 10):  # two full packs: 16k rows waiting for an index file
        store.save(D, os.urandom(blob))
    assert len(list(backend.list(FileType.PACK))) == 2
    assert len(list(backend.list(FileType.INDEX))) == 1  # written before flush
    store.flush()
    fresh = BlobStore(backend, KEY)
    assert fresh.load_index() == [] and len(fresh.index) == 2 * per_pack + 10
