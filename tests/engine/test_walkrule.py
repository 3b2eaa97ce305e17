"""The one rule for what a walk records and enters (engine/walkrule.py), table-driven.

The archiver's walk, its scanner and the prewarm helper all decide with it;
these tables are what each of them now does.
"""

from __future__ import annotations

import os
import stat

import pytest

from amber.engine import prewarm
from amber.engine.patterns import PathMatcher
from amber.engine.prewarm_walk import parse
from amber.engine.source import MappedSource
from amber.engine.walkrule import Rule


def _st(mode: int, dev: int = 1) -> os.stat_result:
    return os.stat_result((mode, 1, dev, 1, 0, 0, 0, 0, 0, 0))


DIR, FILE, LINK = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o644, stat.S_IFLNK | 0o777
EXCLUDES = ["*.tmp", ".cache", "/home/me/skip", "sub/deeper"]

# (path, excludes, one_file_system, lstat, listed directory's dev, skipped, stays out, entered)
CASES = [
    (b"/home/me/a", [], False, _st(DIR), 1, False, False, True),
    (b"/home/me/a.txt", [], False, _st(FILE), 1, False, False, False),  # recorded, not a directory
    (b"/home/me/l", [], False, _st(LINK), 1, False, False, False),  # a symlink is never followed
    (b"/home/me/x.tmp", EXCLUDES, False, _st(FILE), 1, True, False, False),  # a name pattern
    (b"/home/me/d.tmp", EXCLUDES, False, _st(DIR), 1, True, False, False),  # a directory by name
    (b"/home/me/.cache", EXCLUDES, False, _st(DIR), 1, True, False, False),
    (b"/home/me/skip", EXCLUDES, False, _st(DIR), 1, True, False, False),  # an absolute path
    (b"/home/you/skip", EXCLUDES, False, _st(DIR), 1, False, False, True),  # not that path
    (b"/home/me/sub/deeper", EXCLUDES, False, _st(DIR), 1, True, False, False),  # at any depth
    (b"/home/me/mnt", [], False, _st(DIR, dev=2), 1, False, False, True),  # crossing is allowed
    (b"/home/me/mnt", [], True, _st(DIR, dev=2), 1, False, True, False),  # recorded empty
    (b"/home/me/same", [], True, _st(DIR, dev=1), 1, False, False, True),
    (b"/home/me/mnt.tmp", EXCLUDES, True, _st(DIR, dev=2), 1, True, True, False),  # excluded first
]


@pytest.mark.parametrize(
    ("path", "excludes", "one_fs", "st", "dev", "skipped", "stays_out", "entered"), CASES
)
def test_the_rule(
    path: bytes, excludes: list[str], one_fs: bool, st: os.stat_result, dev: int,
    skipped: bool, stays_out: bool, entered: bool,
) -> None:  # fmt: skip
    matcher = PathMatcher(excludes)
    rule = Rule(matcher.matches if matcher else None, one_fs)
    name = path.rsplit(b"/", 1)[1]
    assert rule.skips(path, name) is skipped
    assert (stat.S_ISDIR(st.st_mode) and rule.stays_out(st, dev)) is stays_out
    assert rule.enters(path, name, st, dev) is entered


def test_the_helper_gets_the_rule_and_the_mounts_from_its_command_line() -> None:
    source = MappedSource("/snap/a", "/home/me", ("/snap/b", "/srv"))
    cmd = prewarm.command([b"/home/me", b"/srv/x"], PathMatcher(EXCLUDES[:2]), True, 3, source.mounts)
    paths, excluded, one_fs, threads, mounts = parse(cmd[cmd.index("-c") + 2 :])
    assert paths == [b"/home/me", b"/srv/x"] and one_fs and threads == 3
    assert mounts == source.mounts
    assert excluded is not None and excluded(b"/a/b.tmp", b"b.tmp") and not excluded(b"/a/b", b"b")
