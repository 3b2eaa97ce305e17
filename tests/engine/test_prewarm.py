"""The metadata prewarm helper: its walk, its exclude test, and the process's lifecycle and imports."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from amber.engine import prewarm
from amber.engine.patterns import PathMatcher
from amber.engine.prewarm_walk import exclude_test, walk
from tests.engine.test_scanner import _make


def _excluded(patterns: list[str]) -> Callable[[bytes, bytes], bool] | None:
    return exclude_test(PathMatcher(patterns).patterns)


def test_walk_visits_what_the_archiver_would(tmp_path: Path) -> None:
    order = _make(tmp_path / "t")
    root = order[0]
    assert walk([root], None, False, 4) == len(order)
    assert walk([root], _excluded(["skip"]), False, 4) == len(order) - 2
    assert walk([root], _excluded(["s*p"]), False, 4) == len(order) - 2
    assert walk([root], _excluded([os.fsdecode(root) + "/a/b"]), False, 2) == len(order) - 3
    assert walk([root], _excluded(["nothing-here", "/nowhere"]), False, 3) == len(order)
    assert walk([root + b"/a", root + b"/z", root + b"/missing"], None, False, 2) == 6
    assert walk([root + b"/a/f.txt"], None, True, 1) == 0


PATTERNS = [
    [".cache"],
    ["node_modules", "/proc", "/home/u/tmp/"],
    ["/"],
    ["*.tmp"],
    ["/home/*/.cache"],
    ["u/tmp"],
    ["**/x"],
    ["[ab]c", "d?"],
    ["a[b"],
    ["ünïcode", "/var/ünï"],
]
PATHS = [
    b"/home/u/.cache",
    b"/home/u/tmp",
    b"/home/u/tmp/x",
    b"/proc",
    b"/srv/proc",
    b"/x/node_modules",
    b"/a/b.tmp",
    b"/ac",
    b"/d1",
    b"/a[b",
    b"/x/\xc3\xbcn\xc3\xafcode",
    b"/var/\xc3\xbcn\xc3\xaf",
    b"/var/\xff",
]


@pytest.mark.parametrize("patterns", PATTERNS, ids=str)
def test_exclude_test_agrees_with_the_path_matcher(patterns: list[str]) -> None:
    matcher = PathMatcher(patterns)
    excluded = exclude_test(matcher.patterns)
    assert excluded is not None
    for path in PATHS:
        name = path.rsplit(b"/", 1)[1]
        assert excluded(path, name) == matcher.matches(path, name), path


def test_literal_excludes_need_no_regular_expressions() -> None:
    assert exclude_test([]) is None
    literal = exclude_test(PathMatcher([".cache", "/proc", "/mnt/"]).patterns)
    assert getattr(literal, "__self__", None) is None  # a plain function, no PathMatcher
    glob = exclude_test(PathMatcher(["*.tmp", ".cache"]).patterns)
    assert isinstance(getattr(glob, "__self__", None), PathMatcher)


def _imports(tmp_path: Path, patterns: list[str]) -> set[str]:
    """Modules the helper process imports, from its own ``-X importtime`` report."""
    order = _make(tmp_path / "t")
    cmd = prewarm.command([order[0]], PathMatcher(patterns), False, 2)
    cmd[1:1] = ["-X", "importtime"]
    done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=True)
    lines = done.stderr.decode().splitlines()
    assert lines[0].startswith("import time:")
    return {line.rsplit("|", 1)[1].strip() for line in lines[1:]}


def test_the_helper_process_imports_no_amber_package(tmp_path: Path) -> None:
    imported = _imports(tmp_path, [".cache", "/proc"])
    assert "prewarm_walk" in imported  # the report covers the helper's own imports
    heavy = {"amber", "threading", "subprocess", "contextlib", "re", "pathlib", "collections"}
    assert not heavy & imported
    assert not [m for m in imported if m.startswith("amber")]


def test_a_glob_exclude_loads_the_path_matcher_in_the_helper(tmp_path: Path) -> None:
    imported = _imports(tmp_path, ["*.tmp"])
    assert "amber.engine.patterns" in imported and "re" in imported


def test_helper_runs_and_stops(tmp_path: Path) -> None:
    order = _make(tmp_path / "t")
    helper = prewarm.start([order[0]], PathMatcher(["skip"]), True)
    assert helper.running
    proc = helper._proc
    assert proc is not None
    helper.stop()
    assert proc.returncode == 0 and not helper.running
    helper.stop()  # twice is harmless


def _big(tmp_path: Path) -> bytes:
    big = tmp_path / "big"
    for i in range(200):
        (big / f"d{i:03}").mkdir(parents=True)
    return os.fsencode(big)


def test_helper_exits_at_end_of_input_mid_walk(tmp_path: Path) -> None:
    helper = prewarm.start([_big(tmp_path)] * 5000, PathMatcher([]), False, threads=2)
    proc = helper._proc
    assert proc is not None
    time.sleep(0.3)
    assert proc.poll() is None  # a million directories to list: far from done
    helper.stop()
    assert proc.returncode == 0  # exited by itself, not killed after stop's timeout


def test_helper_exits_when_the_walk_is_done(tmp_path: Path) -> None:
    order = _make(tmp_path / "t")
    proc = subprocess.Popen(prewarm.command([order[0]], PathMatcher([]), False, 2), stdin=subprocess.PIPE)
    try:
        assert proc.wait(timeout=30) == 0  # its input is still open
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1].startswith("Z")  # exited, not yet reaped
    except FileNotFoundError:
        return True


def test_helper_exits_when_its_parent_goes_away(tmp_path: Path) -> None:
    """The helper watches its stdin: a killed backup does not leave it walking."""
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from amber.engine import prewarm;"
            "from amber.engine.patterns import PathMatcher;"
            "h = prewarm.start([sys.argv[1].encode()] * 5000, PathMatcher([]), False, threads=1);"
            "print(h._proc.pid, flush=True); time.sleep(60)",
            os.fsdecode(_big(tmp_path)),
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
