"""Restore stays inside its target, whatever the tree says and whoever else writes in the target.

Every test builds a canary tree around the target (siblings, parents, an
``outside`` directory that planted symlinks point to) and asserts that nothing
in it changed. Crafted trees are served to the restorer without decoding, so
the restorer's own checks are what is tested here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from amber.engine import restore_fs, restore_procs
from amber.engine.restorer import RestoreOptions, Restorer, RestoreResult
from amber.engine.treewalk import walk
from amber.errors import AmberError, IntegrityError
from amber.repository import Node, Repository, Tree
from tests.conftest import is_root
from tests.engine.restore_hostile import Canary, MemoryTrees, dir_node, file_node, symlink_node

NOBODY = 65534
Build = Callable[[MemoryTrees, Repository, Canary], bytes]


@pytest.fixture(autouse=True, params=["threads", "workers"])
def options(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> RestoreOptions:
    """Every case with the threaded writer and with forked workers (each batch forked)."""
    monkeypatch.setattr(restore_procs, "INLINE_FILES", -1)
    monkeypatch.setattr(_options, "processes", 2 if request.param == "workers" else 1)
    return _options


_options = RestoreOptions()


def restore(repo: Repository, trees: MemoryTrees, root: bytes, target: Path) -> RestoreResult:
    repo.blobs.flush()
    restorer = Restorer(trees, repo.blobs, _options, blob_id=repo.key.blob_id)
    return restorer.restore(walk(trees, root), os.fsencode(target))


def _dotdot_dir(m: MemoryTrees, r: Repository, c: Canary) -> bytes:
    inside = m.add(file_node(r, b"pwned", b"through .."), file_node(r, b"sib.txt", b"overwritten"))
    return m.add(dir_node(b"..", inside, mode=0o777), file_node(r, b"ok", b"fine"))


def _dotdot_names(m: MemoryTrees, r: Repository, c: Canary) -> bytes:
    return m.add(
        file_node(r, b"../sib.txt", b"x"),
        file_node(r, b"../../../top.txt", b"x"),
        file_node(r, b"ok", b"fine"),
    )


def _empty_and_dots(m: MemoryTrees, r: Repository, c: Canary) -> bytes:
    (c.target / "keep.txt").write_bytes(b"was here")
    return m.add(
        file_node(r, b"", b"x"),
        file_node(r, b".", b"x"),
        file_node(r, b"..", b"x"),
        dir_node(b".", m.add(file_node(r, b"sib.txt", b"x"))),
        file_node(r, b"ok", b"fine"),
    )


def _slashes(m: MemoryTrees, r: Repository, c: Canary) -> bytes:
    inside = m.add(file_node(r, b"inner", b"x"))
    return m.add(
        file_node(r, b"/abs", b"x"),
        file_node(r, b"sub/../../sib.txt", b"x"),
        dir_node(b"x/../..", inside),
        file_node(r, b"ok", b"fine"),
    )


def _nul(m: MemoryTrees, r: Repository, c: Canary) -> bytes:
    later = m.add(file_node(r, b"after", b"still restored"))
    return m.add(
        file_node(r, b"a\0b", b"x"),
        dir_node(b"n\0ul", later),
        dir_node(b"ok-dir", later),
        file_node(r, b"ok", b"fine"),
    )


def _nested_dotdot(m: MemoryTrees, r: Repository, c: Canary) -> bytes:
    deepest = m.add(file_node(r, b"top.txt", b"x"), file_node(r, b"sib.txt", b"x"))
    chain = m.add(dir_node(b"..", m.add(dir_node(b"..", deepest, 0o777)), 0o777))
    return m.add(dir_node(b"ok", chain), dir_node(b"..", chain, 0o777), file_node(r, b"ok-file", b"fine"))


def _dir_then_symlink(m: MemoryTrees, r: Repository, c: Canary) -> bytes:
    first = m.add(file_node(r, b"f1", b"in the real d"))
    second = m.add(file_node(r, b"f2", b"would go through the symlink"), file_node(r, b"precious.txt", b"x"))
    return m.add(
        dir_node(b"d", first),
        symlink_node(b"d", os.fsencode(c.outside)),
        dir_node(b"d", second),
        file_node(r, b"ok", b"fine"),
    )


def _symlink_then_dir(m: MemoryTrees, r: Repository, c: Canary) -> bytes:
    inside = m.add(file_node(r, b"precious.txt", b"overwritten"), file_node(r, b"new", b"x"))
    return m.add(
        symlink_node(b"d", os.fsencode(c.outside)), dir_node(b"d", inside), file_node(r, b"ok", b"fine")
    )


CASES: dict[str, tuple[Build, set[str], int]] = {
    # name: (tree, what must exist in the target afterwards, errors at least)
    "dotdot-dir-0777": (_dotdot_dir, {"ok"}, 1),
    "dotdot-in-names": (_dotdot_names, {"ok"}, 2),
    "empty-dot-dotdot": (_empty_and_dots, {"ok", "keep.txt"}, 4),
    "slash-in-names": (_slashes, {"ok"}, 3),
    "nul-in-names": (_nul, {"ok", "ok-dir", "ok-dir/after"}, 2),
    "nested-dotdot": (_nested_dotdot, {"ok", "ok-file"}, 2),
    "dir-then-symlink": (_dir_then_symlink, {"ok", "d", "d/f1"}, 2),
    "symlink-then-dir": (_symlink_then_dir, {"ok", "d"}, 1),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_crafted_names_never_leave_the_target(repo: Repository, tmp_path: Path, case: str) -> None:
    build, expected, min_errors = CASES[case]
    canary = Canary(tmp_path / "canary")
    trees = MemoryTrees()
    result = restore(repo, trees, build(trees, repo, canary), canary.target)
    canary.assert_unchanged()
    assert len(result.errors) >= min_errors, result.errors
    assert all(": skipped: " in e for e in result.errors), result.errors
    assert all("\n" not in e for e in result.errors)
    present = {str(p.relative_to(canary.target)) for p in canary.target.rglob("*")}
    assert present == expected
    assert stat.S_IMODE(canary.target.stat().st_mode) != 0o777


def test_a_second_name_does_not_redirect_the_first(repo: Repository, tmp_path: Path) -> None:
    canary = Canary(tmp_path / "canary")
    trees = MemoryTrees()
    result = restore(repo, trees, _dir_then_symlink(trees, repo, canary), canary.target)
    assert (canary.target / "d").is_dir() and not (canary.target / "d").is_symlink()
    assert (canary.target / "d" / "f1").read_bytes() == b"in the real d"
    assert [e.split(": ", 1)[1] for e in result.errors] == [
        "skipped: a second entry of this name in its directory",
        "skipped: a second entry of this name in its directory, with everything under it",
    ]


def test_what_is_in_the_way(repo: Repository, tmp_path: Path) -> None:
    """Exactly the entry in the way is removed; a non-empty directory never is."""
    canary = Canary(tmp_path / "canary")
    t = canary.target
    (t / "full").mkdir()
    (t / "full" / "mine.txt").write_bytes(b"keep me")
    (t / "empty").mkdir()
    os.symlink(canary.outside, t / "dir")
    os.mkfifo(t / "fifo-in-the-way")
    os.link(canary.outside / "precious.txt", t / "hardlinked")  # resuming into it would write outside
    trees = MemoryTrees()
    root = trees.add(
        file_node(repo, b"full", b"a file where a full directory is"),
        file_node(repo, b"empty", b"replaces an empty directory"),
        dir_node(b"dir", trees.add(file_node(repo, b"precious.txt", b"through the symlink"))),
        file_node(repo, b"fifo-in-the-way", b"a fifo is not opened"),
        file_node(repo, b"hardlinked", b"a new file, not the outside inode"),
    )
    result = restore(repo, trees, root, t)
    canary.assert_unchanged()
    assert result.errors == [f"{t}/full: cannot create: a non-empty directory is in the way"]
    assert (t / "full" / "mine.txt").read_bytes() == b"keep me"
    assert (t / "empty").read_bytes() == b"replaces an empty directory"
    assert (t / "dir").is_dir() and not (t / "dir").is_symlink()
    assert (t / "fifo-in-the-way").read_bytes() == b"a fifo is not opened"
    assert (t / "hardlinked").read_bytes() == b"a new file, not the outside inode"
    assert (t / "hardlinked").stat().st_nlink == 1


@pytest.fixture
def few_descriptors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(restore_fs, "_MAX_OPEN", 64)  # fewer than the directories of these trees


@pytest.mark.usefixtures("few_descriptors")
def test_many_deep_directories_with_few_descriptors(repo: Repository, tmp_path: Path) -> None:
    """Descriptors are bounded: a path deeper than the cache, and siblings that evict it, still restore."""
    trees = MemoryTrees()
    tree = trees.add(file_node(repo, b"leaf", b"bottom"))
    for i in range(200):
        tree = trees.add(dir_node(b"l%03d" % i, tree), file_node(repo, b"f%03d" % i, b"level %d" % i))
    before = len(os.listdir("/proc/self/fd"))
    result = restore(repo, trees, tree, tmp_path / "t")
    assert not result.errors and result.dirs == 200 and result.files == 201
    assert len(os.listdir("/proc/self/fd")) == before
    deepest = tmp_path / "t" / "/".join(f"l{i:03d}" for i in range(199, -1, -1))
    assert (deepest / "leaf").read_bytes() == b"bottom"
    assert (tmp_path / "t" / "l199" / "l198" / "f197").read_bytes() == b"level 197"


# -- another local user plants symlinks in a shared target -----------------------------------
def _as_nobody(work: Callable[[], int]) -> tuple[int, int]:
    """Run ``work`` in a forked child as user nobody; returns (pid, read end of a pipe with its int)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.write(w, str(work()).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    return pid, r


def _wait(child: tuple[int, int], timeout: float = 60) -> int:
    """The child's int; it must exit 0."""
    pid, r = child
    deadline = time.monotonic() + timeout
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
        assert time.monotonic() < deadline, "the other user's process did not stop"
        time.sleep(0.01)
    with os.fdopen(r, "rb") as f:
        out = f.read()
    assert os.waitstatus_to_exitcode(done[1]) == 0
    return int(out)


@pytest.fixture
def shared() -> Iterator[Canary]:
    """A canary another user can reach, with the target owned by that user."""
    root = Path(tempfile.mkdtemp(prefix="amber-shared-"))
    try:
        if any(not p.stat().st_mode & stat.S_IXOTH for p in root.parents):
            pytest.skip(f"{root.parent} is not reachable by other users")
        os.chmod(root, 0o755)
        canary = Canary(root / "canary")
        os.chmod(canary.parent, 0o755)
        os.chown(canary.target, NOBODY, NOBODY)
        canary.before = canary.record()
        yield canary
    finally:
        shutil.rmtree(root)


def _tree_with_d(repo: Repository, files: int) -> tuple[MemoryTrees, bytes]:
    trees = MemoryTrees()
    sub = trees.add(*(file_node(repo, b"s%04d" % i, b"sub %d" % i) for i in range(files // 4)))
    d = trees.add(
        dir_node(b"sub", sub),
        *(file_node(repo, b"f%04d" % i, b"file %d" % i) for i in range(files)),
        file_node(repo, b"precious.txt", b"overwritten through a symlink"),
    )
    return trees, trees.add(dir_node(b"d", d), file_node(repo, b"top.txt", b"top"))


@pytest.mark.skipif(not is_root(), reason="needs root to act as another user")
def test_symlinks_planted_by_another_user(repo: Repository, shared: Canary) -> None:
    t, out = shared.target, shared.outside

    def plant() -> int:
        os.symlink(out, t / "d")
        os.symlink(out / "precious.txt", t / "top.txt")
        return 0

    _wait(_as_nobody(plant))
    trees, root = _tree_with_d(repo, 200)
    result = restore(repo, trees, root, t)
    shared.assert_unchanged()
    assert not result.errors, result.errors
    assert (t / "d").is_dir() and not (t / "d").is_symlink() and len(os.listdir(t / "d")) == 202
    assert (t / "top.txt").read_bytes() == b"top" and not (t / "top.txt").is_symlink()


def _swap_until_stopped(t: Path, out: Path) -> Callable[[], int]:
    """Keep moving ``t/d`` away and putting a symlink to ``out`` there (bounded: 20 s)."""

    def swap() -> int:
        d, end, i = t / "d", time.monotonic() + 20, 0
        (t / ".ready").touch()
        while time.monotonic() < end and not (t / ".stop").exists():
            i += 1
            with contextlib.suppress(OSError):
                os.rename(d, t / f"moved{i}")
            with contextlib.suppress(OSError):
                os.symlink(out, d)
            time.sleep(0.0005)
            with contextlib.suppress(OSError):
                os.unlink(d)
        return i

    return swap


@pytest.mark.skipif(not is_root(), reason="needs root to act as another user")
def test_a_directory_swapped_for_a_symlink_during_the_write(repo: Repository, shared: Canary) -> None:
    """Another user keeps swapping ``d`` for a symlink to outside while restore runs, three times."""
    t = shared.target
    trees, root = _tree_with_d(repo, 600)
    repo.blobs.flush()
    swapper = _as_nobody(_swap_until_stopped(t, shared.outside))
    try:
        deadline = time.monotonic() + 30
        while not (t / ".ready").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        results = [restore(repo, trees, root, t) for _ in range(3)]
    finally:
        (t / ".stop").touch()
        rounds = _wait(swapper)
    assert rounds > 10  # it really raced
    shared.assert_unchanged()
    for result in results:  # what was refused is said, one line each
        assert all(e.startswith(str(t)) and "\n" not in e for e in result.errors)


def test_node_types_the_restorer_does_not_know_are_errors(repo: Repository, tmp_path: Path) -> None:
    trees = MemoryTrees()
    root = trees.add(Node(b"sock", "socket", mode=0o777), file_node(repo, b"ok", b"fine"))
    result = restore(repo, trees, root, tmp_path / "t")
    assert result.errors == [f"{tmp_path}/t/sock: cannot create: unknown node type 'socket'"]
    assert sorted(os.listdir(tmp_path / "t")) == ["ok"]


class _SwapOnFirstEmptyFile:
    """Progress that, when the empty file ``zz`` is done (walk phase), swaps ``d`` for a symlink."""

    def __init__(self, target: Path, outside: Path) -> None:
        self.target, self.outside = target, outside

    def file_done(self, path: bytes, size: int, status: str) -> None:
        if path.endswith(b"/zz"):
            os.rename(self.target / "d", self.target / "moved")
            os.symlink(self.outside, self.target / "d")

    def bytes_done(self, n: int) -> None:
        pass

    def error(self, path: bytes, message: str) -> None:
        pass


@pytest.mark.usefixtures("few_descriptors")
def test_a_directory_replaced_after_it_was_made_is_not_reentered(repo: Repository, tmp_path: Path) -> None:
    """``d``'s descriptor is evicted by 100 later directories, then ``d`` becomes a symlink:
    its file and its metadata are refused, with a line each, and nothing goes outside."""
    canary = Canary(tmp_path / "canary")
    trees = MemoryTrees()
    d = trees.add(file_node(repo, b"precious.txt", b"through the symlink"))
    others = [dir_node(b"e%03d" % i, trees.add(file_node(repo, b"x", b"%d" % i))) for i in range(100)]
    empty = Node(b"zz", "file", mode=0o644)
    root = trees.add(dir_node(b"d", d, mode=0o777), *others, empty)
    repo.blobs.flush()
    progress = _SwapOnFirstEmptyFile(canary.target, canary.outside)
    result = Restorer(trees, repo.blobs, _options, progress, repo.key.blob_id).restore(
        walk(trees, root), os.fsencode(canary.target)
    )
    canary.assert_unchanged()
    t = canary.target
    assert sorted(e.split(": ", 1)[1].split(" (")[0] for e in result.errors) == [
        "metadata not applied: directory changed during restore",
        "write failed: directory changed during restore",
    ]
    assert os.listdir(t / "moved") == [] and stat.S_IMODE((t / "moved").stat().st_mode) == 0o700
    assert (t / "e099" / "x").read_bytes() == b"99"


def test_a_tree_that_cannot_be_read_is_skipped_as_damage(repo: Repository, tmp_path: Path) -> None:
    """A tree that fails to load (e.g. refused when decoded) costs its subtree, not the restore."""
    trees = MemoryTrees()
    bad = b"\x01" * 32  # not in the loader

    def load(tree_id: bytes) -> Tree:
        if tree_id == bad:
            raise IntegrityError("malformed tree: invalid name")
        return trees(tree_id)

    root = trees.add(dir_node(b"a", bad), dir_node(b"b", trees.add(file_node(repo, b"f", b"after"))))
    repo.blobs.flush()
    result = Restorer(load, repo.blobs, _options).restore_tree(root, os.fsencode(tmp_path / "t"))
    assert result.errors == [f"{tmp_path}/t/a: cannot read directory: malformed tree: invalid name"]
    assert result.damaged == 1
    assert (tmp_path / "t" / "b" / "f").read_bytes() == b"after"


def test_a_target_that_is_a_file_is_a_clean_error(repo: Repository, tmp_path: Path) -> None:
    (tmp_path / "t").write_bytes(b"")
    trees = MemoryTrees()
    with pytest.raises(AmberError, match=r"cannot restore into .*/t: "):
        restore(repo, trees, trees.add(file_node(repo, b"f", b"x")), tmp_path / "t")


@pytest.mark.parametrize(("soft", "kept"), [(100, 25), (1 << 20, 1024)])
def test_descriptors_kept_open_stay_within_a_quarter_of_the_rlimit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, soft: int, kept: int
) -> None:
    monkeypatch.setattr(restore_fs.resource, "getrlimit", lambda _: (soft, soft))
    before = len(os.listdir("/proc/self/fd"))
    tree = restore_fs.TargetTree(os.fsencode(tmp_path / "t"))
    try:
        for i in range(kept + 10):
            tree.enter(tree.root, b"d%d" % i)
        assert len(os.listdir("/proc/self/fd")) == before + 1 + kept  # the target's and the cache
    finally:
        tree.close()
    assert len(os.listdir("/proc/self/fd")) == before
