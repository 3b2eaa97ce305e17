"""The walk-order scanner, on real directories (the prewarm helper: test_prewarm.py)."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from amber.engine.parenttrees import ParentTrees
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
