"""The Btrfs provider and LocalSnapshots on a real Btrfs filesystem (loop device)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from amber.errors import LocalSnapshotError
from amber.sources.btrfs import BtrfsProvider
from amber.sources.local import LocalSnapshots, Settings
from amber.sources.naming import new_name
from amber.sources.owners import OwnerRecord, Owners
from tests.btrfs_fs import needs_btrfs, sh, subvolume

pytestmark = needs_btrfs


def local(tmp_path: Path, keep: int = 0) -> LocalSnapshots:
    return LocalSnapshots(
        {"btrfs": BtrfsProvider()}, Owners(str(tmp_path / "owners")), Settings("btrfs", keep)
    )


def test_volume_of_finds_the_subvolume_above_a_path(btrfs: Path) -> None:
    vol = subvolume(btrfs / "vol")
    (vol / "a" / "b").mkdir(parents=True)
    provider = BtrfsProvider()
    found = provider.volume_of(str(vol / "a" / "b"))
    assert found is not None and found.ident == str(vol) and found.top == str(btrfs)
    top = provider.volume_of(str(btrfs))
    assert top is not None and top.ident == str(btrfs)


def test_volume_of_a_path_elsewhere_is_none(tmp_path: Path, btrfs: Path) -> None:
    assert BtrfsProvider().volume_of(str(tmp_path)) is None


def test_take_maps_original_paths_and_nested_subvolumes(tmp_path: Path, btrfs: Path) -> None:
    vol = subvolume(btrfs / "vol")
    (vol / "f.txt").write_text("one")
    inner = subvolume(vol / "inner")
    (inner / "g.txt").write_text("two")
    deeper = subvolume(inner / "deeper")
    (vol / "d").mkdir()
    elsewhere = subvolume(btrfs / "elsewhere")
    subvolume(elsewhere / "not-below")
    snaps = local(tmp_path)
    plan = snaps.plan([str(vol)])
    assert [v.mountpoint for _, v, _ in plan.volumes] == [str(vol), str(inner), str(deeper)]
    name = str(new_name("home"))
    taken = snaps.take(plan, name, "home")
    (vol / "f.txt").write_text("changed after the snapshot")
    source = taken.source()
    assert Path(os.fsdecode(source.read_path(os.fsencode(vol / "f.txt")))).read_bytes() == b"one"
    assert Path(os.fsdecode(source.read_path(os.fsencode(inner / "g.txt")))).read_bytes() == b"two"
    assert all(s.path.startswith(str(btrfs / ".amber-snapshots" / name)) for _, s in taken.parts)
    with pytest.raises(OSError):  # read-only
        Path(taken.parts[0][1].path, "new").write_text("x")
    assert snaps.release(taken) == []
    assert not (btrfs / ".amber-snapshots" / name).exists()
    assert snaps.owners.names() == []


def test_snapshot_dir_inside_a_backup_path_is_excluded(tmp_path: Path, btrfs: Path) -> None:
    (btrfs / "x").write_text("x")
    snaps = local(tmp_path)
    taken = snaps.take(snaps.plan([str(btrfs)]), str(new_name("top")), "top")
    try:
        assert taken.excludes() == [str(btrfs / ".amber-snapshots")]
    finally:
        snaps.release(taken)


def test_cleanup_keeps_the_newest_kept_and_removes_dead_owners(tmp_path: Path, btrfs: Path) -> None:
    vol = subvolume(btrfs / "vol")
    snaps = local(tmp_path, keep=2)
    plan = snaps.plan([str(vol)])
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    names = [str(new_name("home", start + dt.timedelta(minutes=i))) for i in range(4)]
    for name in names:
        snaps.take(plan, name, "home")
        record = snaps.owners.get(name)
        assert record is not None
        record.state = "kept"
        snaps.owners.save(record)
    crashed = str(new_name("home", start + dt.timedelta(minutes=9)))
    snaps.take(plan, crashed, "home")
    snaps.owners.save(OwnerRecord(crashed, "home", 999_999, "1", "another-boot"))  # a dead owner
    other_job = str(new_name("other", start))
    snaps.take(plan, other_job, "other")
    removed, problems = snaps.cleanup(plan, "home")
    assert problems == []
    assert sorted(removed) == sorted([names[0], names[1], crashed])
    assert sorted(snaps.existing(plan)) == sorted([names[2], names[3], other_job])


def test_a_live_owner_protects_its_snapshot(tmp_path: Path, btrfs: Path) -> None:
    vol = subvolume(btrfs / "vol")
    snaps = local(tmp_path)
    plan = snaps.plan([str(vol)])
    name = str(new_name("home"))
    snaps.take(plan, name, "home")  # owned by this (live) process, still running
    assert snaps.cleanup(plan, "home") == ([], [])
    assert list(snaps.existing(plan)) == [name]


def test_a_failed_snapshot_command_is_an_amber_error(tmp_path: Path, btrfs: Path) -> None:
    vol = subvolume(btrfs / "vol")
    snaps = LocalSnapshots(
        {"btrfs": BtrfsProvider()},
        Owners(str(tmp_path / "o")),
        Settings("btrfs", 0, str(tmp_path / "not-on-btrfs")),
    )
    with pytest.raises(LocalSnapshotError, match="btrfs subvolume snapshot failed"):
        snaps.take(snaps.plan([str(vol)]), str(new_name("home")), "home")


def test_a_subvolume_mounted_with_subvol_is_placed_by_its_mount_root(tmp_path: Path, btrfs: Path) -> None:
    home = subvolume(btrfs / "@home")
    (home / "me").mkdir()
    subvolume(home / "me" / "inner")
    (home / "me" / "inner" / "x").write_text("x")
    mnt = tmp_path / "home"
    mnt.mkdir()
    sh("mount", "-o", "loop,subvol=@home", str(tmp_path / "btrfs.img"), str(mnt))
    try:
        snaps = local(tmp_path)
        plan = snaps.plan([str(mnt / "me")])
        assert [(v.ident, v.top) for _, v, _ in plan.volumes] == [
            (str(mnt), str(mnt)),
            (str(mnt / "me" / "inner"), str(mnt)),
        ]
        taken = snaps.take(plan, str(new_name("home")), "home")
        read = taken.source().read_path(os.fsencode(mnt / "me" / "inner" / "x"))
        assert Path(os.fsdecode(read)).read_text() == "x"
        assert snaps.release(taken) == []
    finally:
        sh("umount", str(mnt))
