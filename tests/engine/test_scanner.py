"""The walk-order scanner and the metadata prewarm helper, on real directories."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from amber.engine import prewarm
from amber.engine.parenttrees import ParentTrees
from amber.engine.patterns import PathMatcher
from amber.engine.scanner import DirScanner, Listing, scan
from amber.repository import Node


def _make(root: Path) -> list[bytes]:
    """A small tree; returns its directories in the walker's order (depth first, sorted)."""
    for rel in ["a/b/c", "a/b/d", "a/e", "b", "b-c/x", "skip/inner", "z"]:
        (root / rel).mkdir(parents=True, exist_ok=True)
        (root / rel / "f.txt").write_bytes(rel.encode())
    (root / "a" / "link").symlink_to("b")
    out: list[bytes] = []

    def visit(p: Path) -> None:
        out.append(os.fsencode(p))
        for child in sorted(p.iterdir(), key=lambda c: os.fsencode(c.name)):
            if child.is_dir() and not child.is_symlink():
                visit(child)

    visit(root)
    return out


def _no_trees(ids: object) -> list[list[Node] | None]:
    raise AssertionError("no parent trees in these tests")


def _subdirs(skip: bytes = b"") -> object:
    def subdirs(path: bytes, listing: Listing, dev: int | None) -> list[tuple[bytes, bytes]]:
        return [
            (path + b"/" + name, b"")
            for name, st in listing.entries
            if isinstance(st, os.stat_result) and stat.S_ISDIR(st.st_mode) and name != skip
        ]

    return subdirs


def _walk(scanner: DirScanner, root: bytes, skip: bytes = b"") -> list[bytes]:
    """Walk like the archiver: depth first in listing order, asking the scanner for each directory."""
    seen: list[bytes] = []
    stack = [root]
    while stack:
        path = stack.pop()
        listing = scanner.listing(path, b"", None)
        assert listing.error is None
        assert listing.entries == scan(path)  # same names, same lstat results
        seen.append(path)
        subdirs = [
            path + b"/" + n
            for n, st in listing.entries
            if isinstance(st, os.stat_result) and stat.S_ISDIR(st.st_mode) and n != skip
        ]
        stack.extend(reversed(subdirs))
    return seen


@pytest.mark.parametrize("threads", [0, 1, 4])
def test_scanner_lists_every_directory_in_walk_order(tmp_path: Path, threads: int) -> None:
    order = _make(tmp_path / "t")
    scanner = DirScanner(ParentTrees(_no_trees), _subdirs(), threads=threads, max_ahead=5)  # type: ignore[arg-type]
    try:
        assert _walk(scanner, order[0]) == order
    finally:
        scanner.close()
    assert not scanner._ready and scanner._ahead >= 0


@pytest.mark.parametrize("threads", [0, 3])
def test_directories_the_walker_skips_are_dropped(tmp_path: Path, threads: int) -> None:
    order = _make(tmp_path / "t")
    # the scanner lists "skip" and below; the walker never asks for them
    scanner = DirScanner(ParentTrees(_no_trees), _subdirs(), threads=threads)  # type: ignore[arg-type]
    try:
        walked = _walk(scanner, order[0], skip=b"skip")
        assert walked == [p for p in order if b"/skip" not in p]
        scanner.listing(order[0] + b"/zz-after-all", b"", None)  # past everything listed
        assert not scanner._ready
    finally:
        scanner.close()


def test_vanished_directory_gives_an_error_listing(tmp_path: Path) -> None:
    order = _make(tmp_path / "t")
    scanner = DirScanner(ParentTrees(_no_trees), _subdirs(), threads=0)  # type: ignore[arg-type]
    try:
        scanner.listing(order[0], b"", None)
        shutil.rmtree(tmp_path / "t" / "a")
        listing = scanner.listing(order[0] + b"/a", b"", None)
        assert isinstance(listing.error, FileNotFoundError) and listing.entries == []
        assert scanner.listing(order[0] + b"/b", b"", None).entries == scan(order[0] + b"/b")
    finally:
        scanner.close()


def test_prewarm_walk_visits_what_the_archiver_would(tmp_path: Path) -> None:
    order = _make(tmp_path / "t")
    root = order[0]
    assert prewarm.walk([root], PathMatcher([]), False, 4) == len(order)
    assert prewarm.walk([root], PathMatcher(["skip"]), False, 4) == len(order) - 2
    assert prewarm.walk([root + b"/a", root + b"/z", root + b"/missing"], PathMatcher([]), False, 2) == 6
    assert prewarm.walk([root + b"/a/f.txt"], PathMatcher([]), True, 1) == 0


def test_prewarm_helper_runs_and_stops(tmp_path: Path) -> None:
    order = _make(tmp_path / "t")
    helper = prewarm.start([order[0]], PathMatcher(["skip"]), True)
    assert helper.running
    proc = helper._proc
    assert proc is not None
    helper.stop()
    assert proc.returncode == 0 and not helper.running
    helper.stop()  # twice is harmless


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1].startswith("Z")  # exited, not yet reaped
    except FileNotFoundError:
        return True


def test_prewarm_helper_exits_when_its_parent_goes_away(tmp_path: Path) -> None:
    """The helper watches its stdin: a killed backup does not leave it walking."""
    big = tmp_path / "big"
    for i in range(200):
        (big / f"d{i:03}").mkdir(parents=True)
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from amber.engine import prewarm;"
            "from amber.engine.patterns import PathMatcher;"
            "h = prewarm.start([sys.argv[1].encode()] * 5000, PathMatcher([]), False, threads=1);"
            "print(h._proc.pid, flush=True); time.sleep(60)",
            str(big),
        ],
        stdout=subprocess.PIPE,
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    time.sleep(0.3)
    assert not _gone(child)  # a million directories to list: far from done
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 20
    while not _gone(child):
        if time.monotonic() > deadline:
            os.kill(child, 9)
            raise AssertionError("the helper outlived its parent")
        time.sleep(0.05)
