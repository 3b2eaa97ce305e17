"""Copying snapshots between repositories with different keys: real repositories on disk."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from amber.engine.copier import CopyOptions, IdCache
from amber.engine.copyplan import choose_reference, copied_map, copied_snapshot, identity, missing
from amber.errors import RepositoryNotFound, UsageError
from amber.repository import BlobType, Repository, Snapshot, init_repository, open_repository
from amber.repository.crypto import KdfParams
from amber.services import session
from amber.services.backup import BackupRequest, backup_paths
from amber.services.check import check
from amber.services.copy import CopyRequest, copy_snapshots
from amber.services.replicate import FAILED, OFFLINE, OK, Destination, replicate
from amber.services.restore import RestoreRequest, restore
from amber.services.snapshots import SnapshotFilter
from amber.storage import FileType, open_backend

PW = b"copy test password"
FAST_KDF = KdfParams(time_cost=1, memory_kib=1024, parallelism=1)


def open_repo(path: Path) -> Repository:
    return open_repository(open_backend(str(path)), PW)


def new_repo(path: Path) -> Repository:
    init_repository(open_backend(str(path)), PW, FAST_KDF).close()
    return open_repo(path)


def make_tree(root: Path, seed: int = 0) -> Path:
    rnd = __import__("random").Random(seed)
    (root / "docs" / "deep" / "er").mkdir(parents=True)
    (root / "empty").mkdir()
    for i in range(30):
        (root / "docs" / f"small-{i}.txt").write_bytes(f"file {i} ".encode() * (i * 37))
    (root / "docs" / "deep" / "er" / "big.bin").write_bytes(rnd.randbytes(3 << 20))
    (root / "docs" / "deep" / "dup.bin").write_bytes(rnd.randbytes(300_000) * 2)
    (root / "zero").write_bytes(b"")
    os.symlink("docs/small-3.txt", root / "link")
    return root


def files_of(root: Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = path.read_bytes()
        else:
            out[rel] = "dir"
    return out


def backup(repo: Repository, src: Path) -> str:
    return backup_paths(repo, BackupRequest(paths=[str(src)])).snapshot_id


def restored(repo: Repository, snapshot: str, target: Path, src: Path) -> dict[str, bytes | str]:
    result = restore(repo, RestoreRequest(snapshot, str(target), verify=True))
    assert result.damaged == 0 and not result.errors
    return files_of(target / src.relative_to("/"))


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[Repository, Repository, Path]]:
    a, b = new_repo(tmp_path / "a"), new_repo(tmp_path / "b")
    yield a, b, make_tree(tmp_path / "src")
    a.close()
    b.close()


def test_copy_restores_identically_with_different_keys(two: tuple[Repository, Repository, Path],
                                                      tmp_path: Path) -> None:  # fmt: skip
    a, b, src = two
    sid = backup(a, src)
    result = copy_snapshots(a, b)
    assert [s for s, _ in result.copied] == [sid] and not result.failed
    copy_id = result.copied[0][1]
    b = open_repo(tmp_path / "b")
    snap = b.load_snapshot(copy_id)
    orig = a.load_snapshot(sid)
    assert snap.original == sid and snap.paths == orig.paths and snap.time == orig.time
    assert snap.tree != orig.tree  # keyed IDs differ per repository
    assert restored(b, copy_id, tmp_path / "out", src) == files_of(src)
    report = check(b, read_data=True)
    assert report.ok, report.errors
    assert not report.warnings, report.warnings  # nothing unreferenced was written


def data_encodings(repo: Repository) -> list[tuple[int, int]]:
    """(sealed length, raw_length) of every data blob, sorted."""
    return sorted((loc.length, loc.raw_length) for _, loc in repo.blobs.index.blobs()
                  if loc.type is BlobType.DATA)  # fmt: skip


@pytest.mark.parametrize(("src_level", "dst_level"), [(0, 3), (3, 0)])
def test_copy_seals_the_source_encoding_without_recompressing(
    two: tuple[Repository, Repository, Path], tmp_path: Path, src_level: int, dst_level: int
) -> None:
    a, b, src = two
    a.blobs.set_compression_level(src_level)
    sid = backup(a, src)
    b.blobs.set_compression_level(dst_level)
    result = copy_snapshots(a, b)
    source = data_encodings(a)
    if src_level:
        assert any(raw for _, raw in source)  # there was compressed data to pass through
    copied = data_encodings(open_repo(tmp_path / "b"))
    if dst_level:  # the same payloads, sealed with the other key: same lengths
        assert copied == source
    else:  # a destination that does not compress stores plaintext
        assert all(raw == 0 for _, raw in copied) and len(copied) == len(source)
    b = open_repo(tmp_path / "b")
    assert restored(b, result.copied[0][1], tmp_path / "out", src) == files_of(src)
    report = check(b, read_data=True)
    assert report.ok, report.errors
    assert sid == result.copied[0][0]


def test_second_copy_is_a_no_op(two: tuple[Repository, Repository, Path], tmp_path: Path) -> None:
    a, b, src = two
    backup(a, src)
    copy_snapshots(a, b)
    packs = sorted(fi.name for fi in b.backend.list(FileType.PACK))
    again = copy_snapshots(a, open_repo(tmp_path / "b"))
    assert again.copied == [] and again.already == 1 and again.stats.blobs_read == 0
    assert sorted(fi.name for fi in b.backend.list(FileType.PACK)) == packs


def test_incremental_copy_reads_only_changed_data(two: tuple[Repository, Repository, Path],
                                                  tmp_path: Path) -> None:  # fmt: skip
    a, b, src = two
    backup(a, src)
    first = copy_snapshots(a, b).stats
    (src / "docs" / "small-5.txt").write_bytes(b"changed")
    (src / "docs" / "new.txt").write_bytes(b"brand new")
    second_id = backup(a, src)
    result = copy_snapshots(a, open_repo(tmp_path / "b"))
    stats = result.stats
    assert [s for s, _ in result.copied] == [second_id]
    assert stats.blobs_read == 2 and stats.blobs_added == 2  # only the two new chunks
    assert stats.bytes_read == len(b"changed") + len(b"brand new")
    assert stats.trees < first.trees  # the unchanged deep subtree was not descended
    b = open_repo(tmp_path / "b")
    copy_id = result.copied[0][1]
    assert restored(b, copy_id, tmp_path / "out", src) == files_of(src)
    assert check(b, read_data=True).ok


def test_copied_parent_points_into_destination(two: tuple[Repository, Repository, Path],
                                               tmp_path: Path) -> None:  # fmt: skip
    a, b, src = two
    backup(a, src)
    backup(a, src)
    result = copy_snapshots(a, b)
    (first_src, first_dst), (_, second_dst) = result.copied
    b = open_repo(tmp_path / "b")
    assert b.load_snapshot(second_dst).parent == first_dst
    assert a.load_snapshot(first_src).original is None


def test_existing_data_in_destination_is_not_stored_again(two: tuple[Repository, Repository, Path],
                                                         tmp_path: Path) -> None:  # fmt: skip
    a, b, src = two
    backup(a, src)
    copy_snapshots(a, b)
    shutil.copytree(src, tmp_path / "elsewhere", symlinks=True)
    backup(a, tmp_path / "elsewhere")  # same data, other paths: no reference snapshot
    result = copy_snapshots(a, open_repo(tmp_path / "b"))  # a new run: empty cache
    assert len(result.copied) == 1
    assert result.stats.blobs_read > 0  # re-hashed to learn the destination IDs...
    assert result.stats.blobs_added == 0 and result.stats.bytes_added == 0  # ...and found present
    b = open_repo(tmp_path / "b")
    out = restored(b, result.copied[0][1], tmp_path / "out", tmp_path / "elsewhere")
    assert out == files_of(src)


def test_small_batches_and_cache_still_copy_everything(two: tuple[Repository, Repository, Path],
                                                       tmp_path: Path) -> None:  # fmt: skip
    a, b, src = two
    sid = backup(a, src)
    options = CopyOptions(workers=2, batch_blobs=3, cache_entries=16)
    result = copy_snapshots(a, b, CopyRequest([sid[:10]]), options)
    assert len(result.copied) == 1
    b = open_repo(tmp_path / "b")
    assert restored(b, result.copied[0][1], tmp_path / "out", src) == files_of(src)
    assert check(b, read_data=True).ok


def test_chain_of_copies_keeps_identity(two: tuple[Repository, Repository, Path], tmp_path: Path) -> None:
    a, b, src = two
    c = new_repo(tmp_path / "c")
    sid = backup(a, src)
    copy_snapshots(a, b)
    copy_snapshots(open_repo(tmp_path / "b"), c)
    c = open_repo(tmp_path / "c")
    (cid, csnap), = c.snapshots().items()
    assert csnap.original == sid
    # back to the start, and a -> c directly: both already there
    assert copy_snapshots(c, a).already == 1
    assert copy_snapshots(a, c).already == 1
    assert restored(c, cid, tmp_path / "out", src) == files_of(src)


def test_filters_select_snapshots(two: tuple[Repository, Repository, Path], tmp_path: Path) -> None:
    a, b, src = two
    backup_paths(a, BackupRequest(paths=[str(src)], tags=["keep"]))
    backup_paths(a, BackupRequest(paths=[str(src)], tags=["other"]))
    result = copy_snapshots(a, b, CopyRequest(filter=SnapshotFilter(tags=["keep"])))
    assert len(result.copied) == 1
    (snap,) = open_repo(tmp_path / "b").snapshots().values()
    assert snap.tags == ["keep"]


def test_damaged_source_writes_no_snapshot(two: tuple[Repository, Repository, Path], tmp_path: Path) -> None:
    a, b, src = two
    backup(a, src)
    big = max(a.backend.list(FileType.PACK), key=lambda fi: fi.size)
    os.remove(next((tmp_path / "a" / "data").rglob(big.name)))
    result = copy_snapshots(open_repo(tmp_path / "a"), b)
    assert result.copied == [] and len(result.failed) == 1
    b = open_repo(tmp_path / "b")
    assert b.snapshot_names() == []
    assert check(b, read_data=True).ok


def test_same_repository_refused(two: tuple[Repository, Repository, Path], tmp_path: Path) -> None:
    a, _, _ = two
    with pytest.raises(UsageError):
        copy_snapshots(a, open_repo(tmp_path / "a"))


def test_replicate_reports_offline_and_catches_up(two: tuple[Repository, Repository, Path],
                                                  tmp_path: Path) -> None:  # fmt: skip
    a, _, src = two
    sid = backup(a, src)
    pw = session.PasswordSource(password_command=f"printf %s '{PW.decode()}'")
    usb = tmp_path / "usb"
    dests = [
        Destination(str(tmp_path / "b"), pw, "ssd"),
        Destination(str(usb), pw, "usb"),
        Destination(str(tmp_path / "b"), session.PasswordSource(password_command="echo wrong"), "bad"),
    ]
    statuses = replicate(a, [sid], dests)
    assert [s.status for s in statuses] == [OK, OFFLINE, FAILED]
    assert statuses[0].copied[0][0] == sid and statuses[0].bytes_added > 0
    assert "no repository" in statuses[1].error
    # the USB disk comes back with a repository: the next run copies what it missed
    new_repo(usb).close()
    second = backup(a, src)
    statuses = replicate(a, [], dests[:2])
    assert [s.status for s in statuses] == [OK, OK]
    assert [x[0] for x in statuses[0].copied] == [second]
    assert sorted(x[0] for x in statuses[1].copied) == sorted([sid, second])
    with pytest.raises(RepositoryNotFound):
        copy_snapshots(a, open_repo(tmp_path / "missing"))


# -- pure parts ------------------------------------------------------------


def snap(time: str, host: str = "h", paths: tuple[str, ...] = ("/d",), parent: str = "",
         original: str | None = None) -> Snapshot:  # fmt: skip
    return Snapshot(time=time, tree=b"t" * 32, paths=list(paths), hostname=host, parent=parent,
                    original=original)  # fmt: skip


T1, T2, T3 = "2025-01-01T00:00:00+00:00", "2025-01-02T00:00:00+00:00", "2025-01-03T00:00:00+00:00"


@pytest.mark.parametrize(
    ("source", "destination", "expected"),
    [
        ({"s1": snap(T1)}, {}, ["s1"]),
        ({"s1": snap(T1)}, {"d1": snap(T1, original="s1")}, []),
        ({"s1": snap(T1, original="x")}, {"x": snap(T1)}, []),  # came from the destination
        ({"s1": snap(T1, original="x")}, {"d": snap(T1, original="x")}, []),  # siblings
        ({"s2": snap(T2), "s1": snap(T1)}, {}, ["s1", "s2"]),  # oldest first
        ({"s1": snap(T1), "s2": snap(T2)}, {"d": snap(T1, original="s2")}, ["s1"]),
    ],
)
def test_missing(source: dict[str, Snapshot], destination: dict[str, Snapshot], expected: list[str]) -> None:
    assert [sid for sid, _ in missing(source.items(), destination)] == expected


SOURCE = {
    "p": snap(T1),
    "q": snap(T2),
    "other-host": snap(T2, host="x"),
    "other-paths": snap(T2, paths=("/e",)),
    "later": snap(T3),
}


@pytest.mark.parametrize(
    ("current", "copied", "expected"),
    [
        (snap(T3, parent="p"), {"p": "dp", "q": "dq"}, "p"),  # the parent wins
        (snap(T3, parent="gone"), {"p": "dp", "q": "dq"}, "q"),  # else the newest alike
        (snap(T2), {"p": "dp", "later": "dl"}, "p"),  # not newer than itself if possible
        (snap(T1), {"later": "dl"}, "later"),  # else any alike
        (snap(T2), {"other-host": "d1", "other-paths": "d2"}, None),
        (snap(T2), {}, None),
    ],
)
def test_choose_reference(current: Snapshot, copied: dict[str, str], expected: str | None) -> None:
    assert choose_reference("me", current, SOURCE, copied) == expected


def test_copied_snapshot_and_maps() -> None:
    s = snap(T1, parent="p")
    c = copied_snapshot("s", s, b"n" * 32, "dp")
    assert (c.tree, c.parent, c.original, c.time) == (b"n" * 32, "dp", "s", T1)
    assert copied_snapshot("s", snap(T1, original="o"), b"n" * 32, None).original == "o"
    assert identity("s", s) == "s"
    assert copied_map({"s": s, "t": snap(T2)}, {"d": c}) == {"s": "d"}


@pytest.mark.parametrize("size", [0, 1, 5000, 3 << 20])
def test_sealing_into_buffers_matches_encrypt_and_decrypt(size: int) -> None:
    from amber.errors import IntegrityError
    from amber.repository.crypto import OVERHEAD, MasterKey

    key, plain = MasterKey.generate(), os.urandom(size)
    sealed = bytearray(size + OVERHEAD)
    key.encrypt_into(plain, memoryview(sealed))
    assert key.decrypt(bytes(sealed)) == plain
    opened = bytearray(size)
    key.decrypt_into(key.encrypt(plain), memoryview(opened))
    assert opened == plain
    sealed[-1] ^= 1
    with pytest.raises(IntegrityError):
        key.decrypt_into(bytes(sealed), memoryview(bytearray(size)))


def test_rarer_gc_nests_and_restores_the_thresholds() -> None:
    import gc

    from amber.engine.gctuning import rarer_gc

    before = gc.get_threshold()
    with rarer_gc():
        assert gc.get_threshold()[0] >= 20_000
        with rarer_gc():
            pass
        assert gc.get_threshold()[0] >= 20_000  # the inner user leaving does not restore
    assert gc.get_threshold() == before


def test_id_cache_is_bounded() -> None:
    cache = IdCache(100)
    for i in range(1000):
        cache.put(i.to_bytes(4, "big"), b"x")
    assert len(cache) <= 100
    assert cache.get((999).to_bytes(4, "big")) == b"x"
    assert cache.get((0).to_bytes(4, "big")) is None


# -- repair packs --from: healing from a replica -----------------------------------


def test_heal_lost_pack_from_replica(two: tuple[Repository, Repository, Path], tmp_path: Path) -> None:
    from amber.services.heal import heal

    a, b, src = two
    sid = backup(a, src)
    copy_snapshots(a, b)
    big = max(a.backend.list(FileType.PACK), key=lambda fi: fi.size)
    os.remove(next((tmp_path / "a" / "data").rglob(big.name)))
    a = open_repo(tmp_path / "a")
    assert not check(a).ok
    with a.lock(exclusive=True):
        result = heal(a, open_repo(tmp_path / "b"))
    assert result.bad_packs == [big.name] and result.healed_snapshots == [sid]
    assert result.blobs_written > 0 and not result.unhealed_snapshots
    a = open_repo(tmp_path / "a")
    report = check(a, read_data=True)
    assert report.ok, report.errors
    assert restored(a, sid, tmp_path / "out", src) == files_of(src)


def test_heal_damaged_pack_salvages_the_rest(two: tuple[Repository, Repository, Path],
                                             tmp_path: Path) -> None:  # fmt: skip
    from amber.services.heal import heal

    a, b, src = two
    sid = backup(a, src)
    copy_snapshots(a, b)
    big = max(a.backend.list(FileType.PACK), key=lambda fi: fi.size)
    path = next((tmp_path / "a" / "data").rglob(big.name))
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0xFF  # inside the first blob
    path.write_bytes(bytes(raw))
    a = open_repo(tmp_path / "a")
    with a.lock(exclusive=True):
        result = heal(a, open_repo(tmp_path / "b"), read_data=True)
    assert result.bad_blobs == 1 and result.healed_snapshots == [sid]
    assert result.salvaged >= 1  # the pack's other blobs were kept, not fetched
    assert not path.exists()
    a = open_repo(tmp_path / "a")
    assert check(a, read_data=True).ok
    assert restored(a, sid, tmp_path / "out", src) == files_of(src)
