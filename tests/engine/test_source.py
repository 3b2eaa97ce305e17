"""Backups through a MappedSource: read a copy, record the original paths.

This is how a filesystem-snapshot source will work: the snapshot is mounted
elsewhere, the snapshot records the paths the user knows. The copies here have
their own inodes and ctimes (as a snapshot mount has its own device), so an
unchanged file must still be recognised by what the source keeps stable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from amber.engine import prewarm
from amber.engine.patterns import PathMatcher
from amber.engine.prewarm_walk import walk
from amber.engine.source import LiveSource, MappedSource
from amber.engine.treewalk import walk as tree_walk
from amber.errors import UsageError
from amber.repository import Repository
from amber.services.backup import BackupOutcome, BackupRequest, backup_paths
from amber.services.restore import RestoreRequest, restore

FILES = {
    "docs/a.txt": b"alpha\n" * 50,
    "docs/b.txt": b"beta\n",
    "docs/deep/c.bin": bytes(range(256)) * 300,  # above the small-file batch size: a pool read
    "cache/junk.tmp": b"junk\n",
    "skipme/x.txt": b"excluded by its original path\n",
    "top.txt": b"top\n",
    "empty": b"",
}


def _tree(tmp_path: Path) -> tuple[Path, Path, Path]:
    """The original tree's path (removed: nothing may read it), and two copies of it elsewhere."""
    work = tmp_path / "w"
    orig = work / "home" / "me"
    for rel, data in FILES.items():
        (orig / rel).parent.mkdir(parents=True, exist_ok=True)
        (orig / rel).write_bytes(data)
    (orig / "docs" / "link").symlink_to("a.txt")
    copies = tmp_path / "snapshots"
    first = copies / "one" / "me"
    second = copies / "two" / "me"
    shutil.copytree(orig, first, symlinks=True)  # copy2: mtimes kept, new inodes and ctimes
    shutil.copytree(orig, second, symlinks=True)
    shutil.rmtree(orig)
    return orig, first, second


def _backup(repo: Repository, recorded: Path, read: Path, excludes: list[str]) -> BackupOutcome:
    source = MappedSource(str(read), str(recorded))
    req = BackupRequest(paths=[str(recorded)], excludes=excludes, source=source)
    with repo.lock():
        return backup_paths(repo, req)


def _recorded(repo: Repository, tree: bytes) -> dict[str, bytes]:
    """Every path the snapshot records, with the content's first blob (or b"")."""
    return {os.fsdecode(p): (n.content[0] if n.content else b"") for p, n in tree_walk(repo.load_tree, tree)}


def _subtree(repo: Repository, tree: bytes, path: Path) -> bytes:
    nodes = {os.fsdecode(p): n for p, n in tree_walk(repo.load_tree, tree)}
    assert nodes[str(path)].subtree
    return nodes[str(path)].subtree


def test_a_mapped_backup_records_original_paths_and_rereads_nothing_from_another_copy(
    repo: Repository, tmp_path: Path
) -> None:
    orig, first, second = _tree(tmp_path)
    excludes = [f"{orig}/skipme", "*.tmp", f"{first}/docs"]  # the last names a read path: no effect
    one = _backup(repo, orig, first, excludes)
    recorded = _recorded(repo, one.snapshot.tree)
    assert one.snapshot.paths == [str(orig)]
    assert f"{orig}/docs/deep/c.bin" in recorded and f"{orig}/top.txt" in recorded
    assert not [p for p in recorded if str(first) in p or "snapshots" in p]
    assert not [p for p in recorded if "skipme" in p or p.endswith(".tmp")]  # excludes met recorded paths
    assert one.result.files_read == 5 and not one.snapshot.partial

    assert os.stat(first / "top.txt").st_ino != os.stat(second / "top.txt").st_ino
    two = _backup(repo, orig, second, excludes)
    assert two.snapshot.parent  # found by the recorded paths
    assert two.result.files_read == 0
    assert two.snapshot.summary.files_unmodified == 5 and two.snapshot.summary.data_blobs_added == 0
    # Unchanged nodes keep the parent's identity. Compared below the backup path: its
    # ancestors (/tmp ...) are read live, and another test may touch them in between.
    assert _subtree(repo, two.snapshot.tree, orig) == _subtree(repo, one.snapshot.tree, orig)

    target = tmp_path / "restored"
    restore(repo, RestoreRequest(ref="latest", target=str(target)))
    back = target / orig.relative_to("/")
    for rel, data in FILES.items():
        if rel.startswith(("skipme", "cache")):
            assert not (back / rel).exists()
        else:
            assert (back / rel).read_bytes() == data
    assert os.readlink(back / "docs" / "link") == "a.txt"


def test_a_changed_file_in_a_mapped_source_is_read_again(repo: Repository, tmp_path: Path) -> None:
    orig, first, second = _tree(tmp_path)
    one = _backup(repo, orig, first, [])
    (second / "docs" / "b.txt").write_bytes(b"beta, changed\n")
    two = _backup(repo, orig, second, [])
    assert two.result.files_read == 1 and two.snapshot.summary.files_changed == 1
    assert _subtree(repo, two.snapshot.tree, orig) != _subtree(repo, one.snapshot.tree, orig)


def test_prewarm_walks_read_paths_and_excludes_recorded_ones(tmp_path: Path) -> None:
    orig, first, _ = _tree(tmp_path)
    mounts = MappedSource(str(first), str(orig)).mounts
    recorded = os.fsencode(orig)
    assert walk([recorded], None, False, 2, mounts) == 5  # me, cache, docs, docs/deep, skipme
    assert walk([recorded], lambda path, name: path == recorded + b"/docs", False, 2, mounts) == 3
    assert walk([recorded], None, False, 2) == 0  # in place, the recorded root does not exist


def test_the_bare_helper_process_walks_read_paths(tmp_path: Path) -> None:
    """The helper's own interpreter (no amber package) with its real command line."""
    orig, first, _ = _tree(tmp_path)
    source = MappedSource(str(first), str(orig))
    cmd = prewarm.command([os.fsencode(orig)], PathMatcher([f"{orig}/docs"]), False, 2, source.mounts)
    boot = cmd.index("-c") + 1
    assert cmd[boot].endswith("prewarm_walk.main(sys.argv[1:])")
    cmd[boot] = cmd[boot].replace("prewarm_walk.main(", "print(prewarm_walk.walk(*prewarm_walk.parse(") + "))"
    done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=True)
    assert done.stdout == b"3\n", done.stderr  # me, cache, skipme: docs excluded by its recorded path


@pytest.mark.parametrize(
    ("pairs", "path", "read"),
    [
        ([("/snap/x", "/")], b"/", b"/snap/x"),
        ([("/snap/x", "/")], b"/home/me", b"/snap/x/home/me"),
        ([("/snap/me", "/home/me")], b"/home/me", b"/snap/me"),
        ([("/snap/me", "/home/me")], b"/home/me/a/b", b"/snap/me/a/b"),
        ([("/snap/me", "/home/me")], b"/home/meow", b"/home/meow"),  # a sibling, not below
        ([("/snap/me", "/home/me")], b"/home", b"/home"),  # an ancestor is read in place
        ([("/snap/me/", "/home/me/")], b"/home/me/a", b"/snap/me/a"),
        ([("/s/root", "/"), ("/s/home", "/home")], b"/home/me", b"/s/home/me"),  # longest wins
        ([("/s/root", "/"), ("/s/home", "/home")], b"/etc/hosts", b"/s/root/etc/hosts"),
    ],
)
def test_mapped_source_read_paths(pairs: list[tuple[str, str]], path: bytes, read: bytes) -> None:
    source = MappedSource(pairs[0][0], pairs[0][1], *pairs[1:])
    assert source.read_path(path) == read
    assert LiveSource().read_path(path) == path


def test_mapped_source_roots_must_be_absolute() -> None:
    with pytest.raises(UsageError):
        MappedSource("snap", "/home")
