"""What a rollback changes, counted on real directory trees (sources/changes.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from amber.sources.changes import Changes, Tree, count, count_against, entry, total, trees, walk


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


def test_the_live_side_enters_only_the_devices_of_the_volumes_rolled_back(tmp_path: Path) -> None:
    root = tmp_path / "live"
    write(root, {"sub/a": "a"})
    assert set(walk(Tree(str(root), devices=frozenset({-1})))[0]) == {b"sub"}  # another device: not entered
    assert set(walk(Tree(str(root), devices=frozenset({root.stat().st_dev})))[0]) == {b"sub", b"sub/a"}


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
