"""Trees crafted by a key holder: bad names, too many nodes, 2^40 paths, a 30,000-deep chain.

Each case writes tree blobs straight through the blob store, bypassing the
encoder's checks, and puts a snapshot on top. Then ``check``, ``ls``, ``find``,
``diff``, ``manifest``, ``dump``, ``copy``, ``restore`` and a drill run as
subprocesses: each must end, with clean one-line errors and a documented exit
code, and the walks must stay within a memory limit set with RLIMIT_AS.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from amber.catalog.query import FindQuery
from amber.catalog.search import walk_hits
from amber.engine.checker import Checker
from amber.engine.treewalk import walk
from amber.errors import InvalidName, InvalidTree, TreeTooLarge
from amber.repository import BlobType, Node, Repository, Snapshot, Tree, model, open_repository
from amber.repository.model import MAX_PATH, MAX_TREE_DEPTH, MAX_TREE_NODES, encode_tree
from amber.services import browse
from amber.services.backup import BackupRequest, backup_paths
from amber.storage import open_backend
from tests.conftest import PASSWORD, AmberCli, CliResult

CHECK_FAILED = 18
INTEGRITY = 14
MEMORY_LIMIT = 300 << 20  # address space for a whole amber process (interpreter, libraries, threads)

Raw = dict[str, object]


def _file(name: bytes, content: bytes = b"") -> Raw:
    return {"name": name, "type": "file", "size": len(content)}


def _dir(name: bytes, subtree: bytes) -> Raw:
    return {"name": name, "type": "dir", "mode": 0o755, "subtree": subtree}


class Crafter:
    """Writes trees and snapshots as a key holder could, with no checks."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo

    def tree(self, nodes: list[Raw]) -> bytes:
        data = msgspec.msgpack.encode({"nodes": nodes})
        tree_id = self.repo.key.blob_id(data)
        self.repo.blobs.save(BlobType.TREE, data, tree_id)
        return tree_id

    def snapshot(self, root: bytes, time: str = "2026-01-01T00:00:00+00:00") -> str:
        self.repo.blobs.flush()
        return self.repo.save_snapshot(Snapshot(time=time, tree=root, paths=["/"], hostname="crafted"))


Crafted = tuple[AmberCli, Crafter]


@pytest.fixture
def crafted(cli: AmberCli) -> Iterator[tuple[AmberCli, Crafter]]:
    repo = open_repository(open_backend(str(cli.repo)), PASSWORD.encode())
    try:
        yield cli, Crafter(repo)
    finally:
        repo.close()


def _one_line_errors(res: CliResult) -> None:
    """Clean one-liners: no traceback, no internal error, nothing a terminal would act on."""
    assert "Traceback" not in res.stderr
    assert "internal error" not in res.stderr
    assert "\0" not in res.stdout + res.stderr and "\x1b" not in res.stdout + res.stderr
    assert all(len(line) < 2 * MAX_PATH for line in res.stderr.splitlines())


def _error_lines(res: CliResult, text: str) -> int:
    return sum(1 for line in res.stderr.splitlines() if line.startswith("error: ") and text in line)


def _limited(cli: AmberCli, *args: str, timeout: float = 120) -> CliResult:
    """Run amber with its address space capped at MEMORY_LIMIT."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    proc = subprocess.run(
        [sys.executable, "-m", "amber", *args], capture_output=True, env=cli.env,
        timeout=timeout, preexec_fn=cap,
    )  # fmt: skip
    return CliResult(proc.returncode, proc.stdout.decode(errors="replace"),
                     proc.stderr.decode(errors="replace"), proc.stdout)  # fmt: skip


# -- bad names: one case each --------------------------------------------------------

BAD_TREES: dict[str, tuple[list[bytes], str]] = {
    "empty": ([b""], "empty name"),
    "dot": ([b"."], "name '.' is not allowed"),
    "dotdot": ([b".."], "name '..' is not allowed"),
    "slash": ([b"../x"], "name '../x' contains '/'"),
    "nul": ([b"a\0b"], "name 'a\\x00b' contains NUL"),
    "duplicate": ([b"a", b"a"], "name 'a' is duplicate"),
    "unsorted": ([b"b", b"a"], "name 'a' is out of order"),
}


def _bad_snapshot(c: Crafter, names: list[bytes]) -> tuple[str, bytes]:
    """/good/ok.txt and /evil/<names>: the evil tree is the bad one."""
    evil = c.tree([_file(n) for n in names])
    good = c.tree([_file(b"ok.txt")])
    root = c.tree([_dir(b"evil", evil), _dir(b"good", good)])
    return c.snapshot(root), evil


@pytest.mark.parametrize("case", sorted(BAD_TREES))
def test_bad_tree_is_damage_named_everywhere(crafted: Crafted, case: str) -> None:
    cli, c = crafted
    names, problem = BAD_TREES[case]
    sid, evil = _bad_snapshot(c, names)

    with pytest.raises(InvalidTree, match=f"tree {evil.hex()[:16]}: entry [01]: {re.escape(problem)}"):
        c.repo.load_tree(evil)
    report = Checker(c.repo).run()
    assert report.damaged == [(sid, "/evil")]

    res = cli.run("check", check=False)
    assert res.returncode == CHECK_FAILED
    assert f"snapshot {sid[:8]}: /evil: tree {evil.hex()[:16]}" in res.stdout + res.stderr
    _one_line_errors(res)

    ls = cli.run("ls", sid[:8], check=False)
    assert ls.returncode == INTEGRITY
    assert ls.stdout.splitlines() == ["/evil", "/good", "/good/ok.txt"]  # the rest is listed
    assert f"error: /evil: tree {evil.hex()[:16]}" in ls.stderr
    _one_line_errors(ls)

    found = cli.run("find", "*", check=False)
    assert found.returncode == INTEGRITY and "/good/ok.txt" in found.stdout
    assert f"error: snapshot {sid[:8]}: /evil: tree {evil.hex()[:16]}" in found.stderr
    _one_line_errors(found)

    manifest = cli.run("manifest", sid[:8], check=False)
    assert manifest.returncode == INTEGRITY
    assert manifest.stdout_bytes.endswith(b"  good/ok.txt\n") and manifest.stdout_bytes.count(b"\n") == 1
    _one_line_errors(manifest)

    empty = c.snapshot(c.tree([]), "2026-01-02T00:00:00+00:00")
    diff = cli.run("diff", empty[:8], sid[:8], check=False)
    assert diff.returncode == INTEGRITY and "+    /good/ok.txt" in diff.stdout
    _one_line_errors(diff)

    dump = cli.run("dump", sid[:8], "/evil/x", check=False)
    assert dump.returncode == INTEGRITY
    _one_line_errors(dump)


def test_restore_of_a_bad_tree_writes_nothing_outside(crafted: Crafted, tmp_path: Path) -> None:
    cli, c = crafted
    target = tmp_path / "box" / "target"
    target.mkdir(parents=True)
    evil = c.tree([_file(b"..", b""), _file(b"x")])
    sid = c.snapshot(c.tree([_dir(b"evil", evil)]))
    res = cli.run("restore", sid[:8], "--target", str(target), check=False)
    assert res.returncode == INTEGRITY
    _one_line_errors(res)
    assert sorted(os.listdir(tmp_path / "box")) == ["target"]


def test_copy_skips_a_snapshot_with_a_bad_tree(crafted: Crafted, tmp_path: Path) -> None:
    cli, c = crafted
    _, evil = _bad_snapshot(c, [b"a/b"])
    dest = tmp_path / "dest"
    cli.run("init", env={"AMBER_REPOSITORY": str(dest)})
    res = cli.run("copy", "--to", str(dest), check=False)
    assert res.returncode != 0
    assert f"tree {evil.hex()[:16]}" in res.stdout + res.stderr
    _one_line_errors(res)


def test_drill_reports_a_bad_tree_and_samples_the_rest(crafted: Crafted) -> None:
    cli, c = crafted
    _, evil = _bad_snapshot(c, [b".."])
    res = cli.run("drill", "--files", "5", check=False)
    assert res.returncode != 0
    assert "1 file," in res.stdout  # /good/ok.txt was still sampled
    assert f"/evil: tree {evil.hex()[:16]}" in res.stdout + res.stderr
    _one_line_errors(res)


def test_too_many_nodes_is_refused_before_decoding(crafted: Crafted) -> None:
    cli, c = crafted
    many = c.tree([_file(b"%07d" % i) for i in range(MAX_TREE_NODES + 1)])
    sid = c.snapshot(c.tree([_dir(b"many", many)]))
    res = _limited(cli, "check")
    assert res.returncode == CHECK_FAILED, res.stderr
    assert f"/many: tree {many.hex()[:16]}: {MAX_TREE_NODES + 1} entries, more than {MAX_TREE_NODES}" in (
        res.stdout + res.stderr
    )
    _one_line_errors(res)
    ls = _limited(cli, "ls", sid[:8])
    assert ls.returncode == INTEGRITY and ls.stdout.splitlines() == ["/many"]


def test_repair_drops_a_bad_tree_and_check_is_clean_after(crafted: Crafted) -> None:
    cli, c = crafted
    _bad_snapshot(c, [b"..", b"x"])
    res = cli.run("repair", "snapshots", check=False)
    assert res.returncode == 0, res.stderr
    _one_line_errors(res)
    assert cli.run("check", check=False).returncode == 0
    assert cli.run("ls", "latest").stdout.splitlines() == ["/evil", "/good", "/good/ok.txt"]


def test_encoder_refuses_what_readers_would_reject(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidName):
        encode_tree(Tree(nodes=[Node(name=b"..", type="file")]))
    with pytest.raises(InvalidTree, match="out of order"):
        encode_tree(Tree(nodes=[Node(name=b"b", type="file"), Node(name=b"a", type="file")]))
    monkeypatch.setattr(model, "MAX_TREE_NODES", 2)
    with pytest.raises(TreeTooLarge):
        encode_tree(Tree(nodes=[Node(name=b"%d" % i, type="file") for i in range(3)]))
    monkeypatch.setattr(model, "MAX_TREE_NODES", 10)
    monkeypatch.setattr(model, "MAX_TREE_BYTES", 100)
    with pytest.raises(TreeTooLarge):
        encode_tree(Tree(nodes=[Node(name=b"x" * 101, type="file")]))


def test_backup_of_a_directory_too_large_for_a_tree_fails_naming_it(
    crafted: Crafted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # fmt: skip
    _, c = crafted
    src = tmp_path / "src"
    (src / "big").mkdir(parents=True)
    for i in range(5):
        (src / "big" / f"f{i}").write_bytes(b"")
    monkeypatch.setattr(model, "MAX_TREE_NODES", 4)
    with pytest.raises(TreeTooLarge, match=f"{src}/big: a directory has 5 entries"):
        backup_paths(c.repo, BackupRequest(paths=[str(src)]))
    assert c.repo.snapshot_names() == []  # no snapshot that readers would refuse


def test_shared_subtree_past_the_path_limit_in_one_place_only(crafted: Crafted) -> None:
    """Sound where it sits high, too long where it sits deep: damage only there, and repair keeps the rest."""
    cli, c = crafted
    shared = c.tree([_file(b"f" * 100)])
    deep = b"x" * 4000
    sid = c.snapshot(c.tree([_dir(b"high", shared), _dir(deep, shared)]))
    report = Checker(c.repo).run()
    assert report.damaged == [(sid, "/" + deep.decode())]
    ls = cli.run("ls", sid[:8], check=False)
    assert ls.returncode == INTEGRITY and "/high/" + "f" * 100 in ls.stdout.splitlines()
    assert ls.stderr.count(f"longer than {MAX_PATH} bytes") == 1
    _one_line_errors(ls)
    assert cli.run("repair", "snapshots").returncode == 0
    assert cli.run("check", check=False).returncode == 0
    after = cli.run("ls", "latest").stdout.splitlines()
    assert after == ["/high", "/high/" + "f" * 100, "/" + deep.decode()]


# -- shapes that explode when walked path by path -----------------------------------------


def _dag(c: Crafter, levels: int, leaf: bytes = b"leaf") -> bytes:
    """``levels`` trees over one leaf, each with two directories naming the next: 2^levels paths."""
    tree = c.tree([_file(leaf)])
    for _ in range(levels):
        tree = c.tree([_dir(b"a", tree), _dir(b"b", tree)])
    return tree


@pytest.mark.slow
def test_2_to_the_40_paths_end_and_stay_bounded(crafted: Crafted) -> None:
    cli, c = crafted
    sid = c.snapshot(_dag(c, 40))

    check = _limited(cli, "check")  # sound, and each tree is checked once
    assert check.returncode == 0, check.stdout + check.stderr

    nothing = _limited(cli, "find", "nothing-here")  # no-match subtrees are not entered again
    assert nothing.returncode == 0 and nothing.stdout == ""

    leaves = _limited(cli, "find", "leaf")
    assert leaves.returncode == INTEGRITY
    assert 1000 < leaves.stdout.count("\n") < 250_000  # every listed path, then the cap
    assert _error_lines(leaves, "repeat under more paths than a walk lists") == 1
    _one_line_errors(leaves)

    ls = _limited(cli, "ls", sid[:8])
    assert ls.returncode == INTEGRITY
    assert ls.stdout.startswith("/a\n/a/a\n") and ls.stdout.count("\n") < 400_000
    assert _error_lines(ls, "repeat under more paths than a walk lists") == 1
    _one_line_errors(ls)

    manifest = _limited(cli, "manifest", sid[:8])
    assert manifest.returncode == INTEGRITY and manifest.stdout_bytes.count(b"\n") < 250_000
    _one_line_errors(manifest)

    empty = c.snapshot(c.tree([]), "2026-01-02T00:00:00+00:00")
    diff = _limited(cli, "diff", empty[:8], sid[:8])
    assert diff.returncode == INTEGRITY and diff.stdout.count("\n") < 400_000
    _one_line_errors(diff)


def test_shared_subtrees_are_listed_at_each_path_within_the_budget(crafted: Crafted) -> None:
    _, c = crafted
    sid = c.snapshot(_dag(c, 10))  # 1024 leaves: far below the budget, so all are listed
    snap = c.repo.load_snapshot(sid)
    leaves = [p for p, n in browse.ls(c.repo, sid) if n.type == "file"]
    assert len(leaves) == 2**10 and len(set(leaves)) == 2**10
    matches = list(walk_hits(c.repo, FindQuery(patterns=("leaf",))))
    assert sorted(m.path for m in matches) == sorted(leaves)
    assert snap.tree and Checker(c.repo).run().ok


def test_a_bad_tree_under_many_paths_is_one_error(crafted: Crafted) -> None:
    cli, c = crafted
    sid = c.snapshot(_dag(c, 12, leaf=b".."))  # the bad leaf tree sits under 4096 paths
    ls = cli.run("ls", sid[:8], check=False)
    assert ls.returncode == INTEGRITY and ls.stdout.count("\n") == 2 * (2**12 - 1)  # every directory
    assert _error_lines(ls, "name '..' is not allowed") == 1
    check = cli.run("check", check=False)
    assert check.returncode == CHECK_FAILED and check.stderr.count("name '..' is not allowed") == 1


def _chain(c: Crafter, depth: int) -> bytes:
    tree = c.tree([_file(b"bottom")])
    for _ in range(depth):
        tree = c.tree([_dir(b"d", tree)])
    return tree


@pytest.mark.slow
def test_30000_deep_chain_ends_with_a_bounded_error(crafted: Crafted) -> None:
    cli, c = crafted
    sid = c.snapshot(_chain(c, 30_000))

    check = _limited(cli, "check")
    assert check.returncode == CHECK_FAILED
    out = check.stdout + check.stderr
    assert out.count("longer than") == 1 and len(out) < 3 * MAX_PATH
    _one_line_errors(check)

    ls = _limited(cli, "ls", sid[:8])
    assert ls.returncode == INTEGRITY
    lines = ls.stdout.splitlines()
    assert len(lines) == MAX_PATH // 2 and max(map(len, lines)) <= MAX_PATH  # linear output
    assert ls.stderr.count("error: ") == 1
    _one_line_errors(ls)

    find = _limited(cli, "find", "bottom")
    assert find.returncode == INTEGRITY and "0 matches" in find.stderr
    _one_line_errors(find)

    repair = _limited(cli, "repair", "snapshots")  # cuts the chain where the limit is
    assert repair.returncode == 0, repair.stderr
    assert _limited(cli, "check").returncode == 0


def test_chain_walk_stops_at_the_path_limit_in_process(crafted: Crafted) -> None:
    _, c = crafted
    root = _chain(c, MAX_TREE_DEPTH + 5)
    c.repo.blobs.flush()
    errors: list[str] = []
    seen = sum(1 for _ in walk(c.repo.load_tree, root, b"", lambda p, e: errors.append(str(e))))
    assert seen == MAX_PATH // 2  # "/d" per level: 2047 levels fit in 4095 bytes
    assert len(errors) == 1 and f"longer than {MAX_PATH} bytes" in errors[0]
    with pytest.raises(InvalidTree):  # without an error sink, the walk raises
        sum(1 for _ in walk(c.repo.load_tree, root))


def test_copy_refuses_a_chain_deeper_than_the_limit(crafted: Crafted, tmp_path: Path) -> None:
    cli, c = crafted
    c.snapshot(_chain(c, MAX_TREE_DEPTH + 5))
    dest = tmp_path / "dest"
    cli.run("init", env={"AMBER_REPOSITORY": str(dest)})
    res = cli.run("copy", "--to", str(dest), check=False)
    assert res.returncode != 0 and f"deeper than {MAX_TREE_DEPTH} levels" in res.stderr
    _one_line_errors(res)
