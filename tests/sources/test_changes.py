"""What a rollback changes, counted on real directory trees (sources/changes.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from amber.sources.changes import Changes, Tree, count, count_against, entry, total, trees, walk
from tests.btrfs_fs import needs_btrfs, sh, subvolume


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))


BASE = {"same.txt": "same", "dir/inner.txt": "inner", "edit.txt": "before"}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: None, Changes(0, 0, 0)),
        (lambda r: (r / "new.txt").write_text("x"), Changes(1, 0, 0)),  # in the replacement: added
        (lambda r: (r / "same.txt").unlink(), Changes(0, 1, 0)),
        (lambda r: (r / "edit.txt").write_text("after, longer"), Changes(0, 0, 1)),  # size
        (lambda r: os.utime(r / "edit.txt", ns=(1, 1)), Changes(0, 0, 1)),  # mtime of a file with data
        (lambda r: (r / "edit.txt").chmod(0o600), Changes(0, 0, 1)),  # permission bits
        (lambda r: os.utime(r / "dir", ns=(1, 1)), Changes(0, 0, 0)),  # a directory's mtime: not a change
        (lambda r: ((r / "dir" / "inner.txt").unlink(), (r / "dir").rmdir()), Changes(0, 2, 0)),
        (lambda r: ((r / "edit.txt").unlink(), (r / "edit.txt").mkdir()), Changes(0, 0, 1)),  # type
        (lambda r: os.symlink("same.txt", r / "link"), Changes(1, 0, 0)),
    ],
)
def test_added_removed_modified_from_the_live_tree_to_its_replacement(
    tmp_path: Path, change: object, expected: Changes
) -> None:
    live, replacement = tmp_path / "live", tmp_path / "replacement"
    write(live, BASE)
    write(replacement, BASE)
    (replacement / "edit.txt").chmod((live / "edit.txt").stat().st_mode)
    assert callable(change)
    change(replacement)
    assert count(trees([(str(live), str(replacement))])) == (expected, "")


def test_a_symlink_is_compared_by_its_target(tmp_path: Path) -> None:
    live, new = tmp_path / "live", tmp_path / "new"
    live.mkdir()
    new.mkdir()
    os.symlink("a", live / "link")
    os.symlink("b", new / "link")
    assert count(trees([(str(live), str(new))])) == (Changes(0, 0, 1), "")


def test_nested_volumes_are_counted_against_their_own_replacement_and_skipped_paths_never(
    tmp_path: Path,
) -> None:
    """Like a ZFS rollback of a dataset and one below it: each against its own snapshot directory."""
    live = tmp_path / "home"
    write(live, {"a.txt": "a", "proj/b.txt": "b", ".zfs/snapshot/s/a.txt": "a", "skipme/x": "x"})
    write(live / ".zfs/snapshot/s", {"proj/.keep": ""})  # the placeholder of the dataset below
    (live / ".zfs/snapshot/s/proj/.keep").unlink()
    write(live / "proj/.zfs/snapshot/s", {"b.txt": "b", "c.txt": "c"})  # proj's snapshot: c.txt added
    proj = live / "proj"
    pairs = [(str(live), str(live / ".zfs/snapshot/s")), (str(proj), str(proj / ".zfs/snapshot/s"))]
    skip = [str(live / ".zfs"), str(live / "proj/.zfs"), str(live / "skipme")]
    assert count(trees(pairs, skip=skip)) == (Changes(1, 0, 0), "")


def test_an_unreadable_tree_is_not_counted_and_says_why(tmp_path: Path) -> None:
    live = tmp_path / "live"
    write(live, BASE)
    changes, why = count(trees([(str(live), str(tmp_path / "gone"))]))
    assert changes is None and why == f"{tmp_path / 'gone'} cannot be read: No such file or directory"
    (tmp_path / "file").write_text("not a directory")
    assert "cannot be read: Not a directory" in count(trees([(str(tmp_path / "file"), str(live))]))[1]


OTHER = frozenset({-1})  # a device no directory is on: every directory counts as on another device


@pytest.mark.parametrize(
    ("devices", "mounts", "walked"),
    [
        (None, None, {b"sub", b"sub/a", b"sub/m", b"sub/m/b"}),  # no device limit: everything
        ("root", frozenset({b"sub"}), {b"sub", b"sub/a", b"sub/m", b"sub/m/b"}),  # same device: entered
        (OTHER, None, {b"sub"}),  # mount table unknown: another device is counted, not entered
        (OTHER, frozenset({b"sub"}), {b"sub"}),  # a mount point on another device: not entered
        (OTHER, frozenset(), {b"sub", b"sub/a", b"sub/m", b"sub/m/b"}),  # no mount point: a subvolume
        (OTHER, frozenset({b"elsewhere"}), {b"sub", b"sub/a", b"sub/m", b"sub/m/b"}),
        (OTHER, frozenset({b"sub/m"}), {b"sub", b"sub/a", b"sub/m"}),  # a mount inside a subvolume
    ],
)
def test_the_live_side_enters_other_devices_only_where_nothing_is_mounted(
    tmp_path: Path, devices: object, mounts: frozenset[bytes] | None, walked: set[bytes]
) -> None:
    """The devices are faked: every directory here is on tmp_path's device, so OTHER makes each "another"."""
    root = tmp_path / "live"
    write(root, {"sub/a": "a", "sub/m/b": "b"})
    limit = frozenset({root.stat().st_dev}) if devices == "root" else devices
    assert limit is None or isinstance(limit, frozenset)
    assert set(walk(Tree(str(root), devices=limit, mounts=mounts))[0]) == walked


@pytest.mark.parametrize(
    ("live", "targets", "mounts"),
    [
        ("/srv/a", ["/", "/srv", "/srv/a", "/srv/a/m", "/srv/a/x/y", "/srv/ab", "/srv/b"], {b"m", b"x/y"}),
        ("/", ["/", "/proc", "/srv/a"], {b"proc", b"srv/a"}),
        ("/srv/a", [], set()),
    ],
)
def test_the_live_tree_knows_the_mount_points_below_it(
    live: str, targets: list[str], mounts: set[bytes]
) -> None:
    [(tree, replacement)] = trees([(live, "/nowhere")], mount_points=targets)
    assert tree.mounts == mounts and replacement.mounts is None


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a tmpfs")


@needs_root
def test_a_filesystem_mounted_inside_is_counted_but_not_entered(tmp_path: Path) -> None:
    """Real mounts, the system's mount table: the tmpfs is another device and a mount point."""
    live, new = tmp_path / "live", tmp_path / "new"
    write(live, {"a": "a"})
    write(new, {"a": "a"})
    os.utime(live / "a", ns=(1, 1))
    os.utime(new / "a", ns=(1, 1))
    (live / "mnt").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "amber-test", str(live / "mnt")], check=True)
    try:
        (live / "mnt" / "inside").write_text("not replaced by a rollback")
        (new / "mnt").mkdir()
        (new / "mnt").chmod((live / "mnt").stat().st_mode)
        assert count(trees([(str(live), str(new))])) == (Changes(0, 0, 0), "")
    finally:
        subprocess.run(["umount", str(live / "mnt")], check=True)


@needs_btrfs
def test_a_nested_subvolume_is_entered_and_a_mounted_one_is_not(tmp_path: Path, btrfs: Path) -> None:
    """Both have their own st_dev (os.path.ismount says both are mounts); one is in the mount table."""
    live, new = subvolume(btrfs / "live"), btrfs / "new"
    new.mkdir()
    nested = subvolume(live / "nested")
    write(nested, {"a": "a", "d/b": "b"})
    elsewhere = subvolume(btrfs / "elsewhere")
    (elsewhere / "x").write_text("another mount: not replaced")
    (live / "mnt").mkdir()
    sh(
        "mount",
        "-o",
        "subvol=elsewhere",
        sh("findmnt", "-no", "SOURCE", str(btrfs)).strip(),
        str(live / "mnt"),
    )
    try:
        assert os.path.ismount(nested) and nested.stat().st_dev != live.stat().st_dev
        (new / "mnt").mkdir()
        (new / "mnt").chmod((live / "mnt").stat().st_mode)
        assert count(trees([(str(live), str(new))])) == (Changes(0, 4, 0), "")  # nested, a, d, d/b
    finally:
        sh("umount", str(live / "mnt"))


def test_against_a_repository_tree_skipped_paths_are_left_out_of_both_sides(tmp_path: Path) -> None:
    live = tmp_path / "live"
    write(live, {"a": "a"})
    st = (live / "a").stat()
    expected = {
        b"a": entry("file", st.st_mode, st.st_size, st.st_mtime_ns, b""),
        b".amber-snapshots": entry("dir", 0o700, 0, 0, b""),
        b".amber-snapshots/x": entry("file", 0o600, 3, 5, b""),
        b"b": entry("symlink", 0o777, 1, 9, b"a"),
    }
    [(tree, _)] = trees([(str(live), str(live))], skip=[str(live / ".amber-snapshots")])
    assert count_against([tree], [expected]) == (Changes(1, 0, 0), "")


def test_totals_of_several_volumes() -> None:
    assert total([(Changes(1, 2, 3), ""), (Changes(1, 0, 1), "")]) == (Changes(2, 2, 4), "")
    assert total([(Changes(1, 2, 3), ""), (None, "why"), (Changes(), "")]) == (None, "why")
