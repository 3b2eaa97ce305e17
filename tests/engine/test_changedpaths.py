"""A backup given a watcher's marks walks only their directories and reuses every other subtree.

The proof that a subtree was reused and not walked: a change the marks do not
name stays out of the snapshot (what a watcher that missed an event would
give), while the summary still counts every file, as a full walk does.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from amber.engine.changedpaths import ChangedPaths, SubtreeCounter
from amber.repository import Repository
from amber.services.backup import BackupOutcome, BackupRequest, backup_paths
from amber.services.browse import dump


@pytest.mark.parametrize(
    ("marks", "whole", "path", "walked"),
    [
        ([b"/r/a/f"], [], b"/r/a", True),  # on the way to a mark
        ([b"/r/a/f"], [], b"/r", True),
        ([b"/r/a/f"], [], b"", True),  # the walk's root
        ([b"/r/a/f"], [], b"/r/b", False),  # a sibling
        ([b"/r/a/f"], [], b"/r/a/f/g", False),  # below a plain mark: not walked
        ([], [b"/r/a"], b"/r/a/f/g", True),  # below a whole-tree mark: walked
        ([], [b"/r/a"], b"/r/ab", False),  # a name sharing the prefix is another directory
        ([b"/r/a/"], [], b"/r/a", True),  # a trailing slash is the same path
    ],
)
def test_needs_walk(marks: list[bytes], whole: list[bytes], path: bytes, walked: bool) -> None:
    changes = ChangedPaths()
    for m in marks:
        changes.add(m)
    for w in whole:
        changes.add_tree(w)
    assert changes.needs_walk(path) is walked


def _tree(src: Path) -> None:
    for d in ("a", "b/c", "b/d"):
        (src / d).mkdir(parents=True)
        for i in range(3):
            (src / d / f"f{i}").write_text(f"{d} {i}\n")


def _backup(repo: Repository, src: Path, parent: str | None = None,
            changes: ChangedPaths | None = None) -> BackupOutcome:  # fmt: skip
    with repo.lock():
        return backup_paths(repo, BackupRequest(paths=[str(src)], parent=parent, changes=changes))


def _read(repo: Repository, sid: str, path: Path) -> bytes:
    class Sink:
        data = b""

        def write(self, b: bytes) -> int:
            self.data += bytes(b)
            return len(b)

    sink = Sink()
    dump(repo, sid, str(path), sink)  # type: ignore[arg-type]
    return sink.data


def test_only_marked_paths_are_looked_at_and_the_summary_counts_all(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    _tree(src)
    first = _backup(repo, src)
    (src / "a" / "f0").write_text("changed and marked\n")
    (src / "b" / "d" / "f1").write_text("changed, never marked\n")  # like an mmap write inotify misses
    (src / "b" / "c" / "new").write_text("new and marked\n")
    changes = ChangedPaths(SubtreeCounter())
    changes.add(os.fsencode(src / "a" / "f0"))
    changes.add(os.fsencode(src / "b" / "c" / "new"))
    watched = _backup(repo, src, first.snapshot_id, changes)

    assert _read(repo, watched.snapshot_id, src / "a" / "f0") == b"changed and marked\n"
    assert _read(repo, watched.snapshot_id, src / "b" / "c" / "new") == b"new and marked\n"
    assert _read(repo, watched.snapshot_id, src / "b" / "d" / "f1") == b"b/d 1\n"  # reused, not walked
    s = watched.snapshot.summary
    assert (s.total_files, s.files_changed, s.files_new, s.files_unmodified) == (10, 1, 1, 8)
    assert s.dirs == first.snapshot.summary.dirs

    full = _backup(repo, src, watched.snapshot_id)  # without marks: every directory is walked
    assert _read(repo, full.snapshot_id, src / "b" / "d" / "f1") == b"changed, never marked\n"
    assert full.snapshot.summary.total_bytes == s.total_bytes + 16


def test_marks_without_an_explicit_parent_walk_everything(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    _tree(src)
    _backup(repo, src)
    (src / "b" / "d" / "f1").write_text("changed, never marked\n")
    changes = ChangedPaths()
    changes.add(os.fsencode(src / "a" / "f0"))
    auto = _backup(repo, src, None, changes)  # marks are only valid against the parent they were made after
    assert _read(repo, auto.snapshot_id, src / "b" / "d" / "f1") == b"changed, never marked\n"


def test_a_whole_tree_mark_walks_a_directory_moved_in(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    _tree(src)
    first = _backup(repo, src)
    os.rename(src / "b" / "d", src / "a" / "moved")
    changes = ChangedPaths()
    changes.add(os.fsencode(src / "b" / "d"))
    changes.add_tree(os.fsencode(src / "a" / "moved"))
    watched = _backup(repo, src, first.snapshot_id, changes)
    assert _read(repo, watched.snapshot_id, src / "a" / "moved" / "f2") == b"b/d 2\n"
    assert watched.snapshot.summary.total_files == 9
