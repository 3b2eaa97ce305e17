"""Real inotify on a temporary directory: which paths a watcher marks (ops/watch/inotify.py)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from amber.engine.changedpaths import ChangedPaths
from amber.ops.watch.inotify import ReadResult, TreeWatcher, WatchLimit


def _settle(w: TreeWatcher, changes: ChangedPaths, seconds: float = 0.3) -> ReadResult:
    """Read every event the kernel has queued (events arrive at once; the wait only bounds the test)."""
    total = ReadResult()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        w.wait(0.05)
        got = w.read(changes)
        total.events += got.events
        total.overflow |= got.overflow
    return total


def _b(p: Path) -> bytes:
    return os.fsencode(p)


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Path]:
    src = tmp_path / "src"
    (src / "a" / "deep").mkdir(parents=True)
    (src / "b").mkdir()
    (src / "cache").mkdir()
    (src / "a" / "f").write_text("1")
    yield src


def test_changes_deletions_and_new_directories_are_marked(tree: Path) -> None:
    w = TreeWatcher([str(tree)], excluded=lambda path, name: name == b"cache")
    try:
        assert w.watches == 4  # src, a, a/deep, b; not the excluded cache
        changes = ChangedPaths()
        (tree / "a" / "f").write_text("2")
        (tree / "b" / "gone").write_text("x")
        _settle(w, changes)
        os.unlink(tree / "b" / "gone")
        (tree / "cache" / "junk").write_text("excluded: never marked")
        (tree / "new" / "sub").mkdir(parents=True)
        _settle(w, changes)
        (tree / "new" / "sub" / "late").write_text("made after the new directory was watched")
        _settle(w, changes)
        assert changes.needs_walk(_b(tree / "a" / "f"))
        assert changes.needs_walk(_b(tree / "b" / "gone"))  # the deletion: b is listed again
        assert changes.needs_walk(_b(tree / "new" / "sub" / "anything"))  # a new directory: all of it
        assert changes.needs_walk(_b(tree / "new" / "sub" / "late"))
        assert not changes.needs_walk(_b(tree / "cache"))
        assert not changes.needs_walk(_b(tree / "a" / "deep"))
        assert w.watches == 6  # new and new/sub are watched now
    finally:
        w.close()


def test_a_directory_moved_away_stops_reporting_under_its_old_name(tree: Path, tmp_path: Path) -> None:
    w = TreeWatcher([str(tree)])
    try:
        changes = ChangedPaths()
        os.rename(tree / "a", tmp_path / "outside")
        _settle(w, changes)
        assert changes.needs_walk(_b(tree / "a"))
        (tmp_path / "outside" / "f").write_text("written outside the backup")
        later = ChangedPaths()
        _settle(w, later)
        assert len(later) == 0
        assert w.watches == 3  # src, b and cache: not a and a/deep
    finally:
        w.close()


def test_a_file_backup_path_is_seen_through_its_directory(tmp_path: Path) -> None:
    target = tmp_path / "app.conf"
    target.write_text("v1")
    w = TreeWatcher([str(target)])
    try:
        changes = ChangedPaths()
        (tmp_path / "other").write_text("not a backup path")
        _settle(w, changes)
        assert len(changes) == 0
        (tmp_path / "app.conf.tmp").write_text("v2")
        os.rename(tmp_path / "app.conf.tmp", target)  # an editor's save-by-rename
        _settle(w, changes)
        assert changes.needs_walk(_b(target))
    finally:
        w.close()


def test_a_full_kernel_queue_reports_an_overflow(tree: Path) -> None:
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    w = TreeWatcher([str(tree)])
    try:
        for i in range(limit // 2 + 100):  # two events (create, delete) each, never read meanwhile
            p = tree / "b" / f"t{i}"
            p.touch()
            p.unlink()
        assert _settle(w, ChangedPaths()).overflow
    finally:
        w.close()


def test_more_directories_than_allowed_raises_watch_limit(tree: Path) -> None:
    with pytest.raises(WatchLimit):
        TreeWatcher([str(tree)], max_watches=2)
    w = TreeWatcher([str(tree)], max_watches=5)
    try:
        (tree / "n1").mkdir()
        (tree / "n2").mkdir()
        with pytest.raises(WatchLimit):
            _settle(w, ChangedPaths())
    finally:
        w.close()


def test_a_directory_moved_away_and_back_is_watched_under_its_name(tree: Path) -> None:
    w = TreeWatcher([str(tree)])
    try:
        os.rename(tree / "a", tree / "b" / "a2")
        os.rename(tree / "b" / "a2", tree / "a")
        _settle(w, ChangedPaths())
        changes = ChangedPaths()
        (tree / "a" / "deep" / "new").write_text("after the round trip")
        _settle(w, changes)
        assert changes.needs_walk(_b(tree / "a" / "deep" / "new"))
        assert not changes.needs_walk(_b(tree / "b" / "a2"))
        assert w.watches == 5  # src, a, a/deep, b, cache: none twice, none lost
    finally:
        w.close()
