"""Damage on the storage side is found by ``check``, named, and contained.

One template repository is built per module and copied for each case:

* snapshot S1 of ``src1``: ``victim.bin`` (random, several chunks), ``neighbor.txt``
  and ``sub/deep.txt``; its data blobs live in data pack P1, listed by index file I1;
* snapshot S2 of ``src2``: ``intact.bin`` and ``intact.txt`` in a different data pack;
* snapshot S3 of ``src3``: ``victim_copy.bin`` (same content as ``victim.bin``, so it
  deduplicates into P1 / I1) and ``own.txt`` (new data, with S3's own trees and index).

Each case damages one object, then checks that ``amber check`` exits 18 and names the
affected snapshots and paths, that undamaged snapshots and files still restore
byte-identically, and that no command prints a traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import blake3
import pytest

from amber.engine.treewalk import walk
from amber.repository import open_repository
from amber.storage import open_backend
from tests.conftest import PASSWORD, AmberCli, CliResult

CHECK_FAILED = 18
INTEGRITY = 14


@dataclass
class Template:
    root: Path
    repo: Path
    sources: dict[str, Path]  # "src1" -> directory
    snaps: dict[str, str]  # "S1" -> snapshot id
    index_files: dict[str, list[str]]  # "S1" -> index files its backup wrote
    # snapshot path (as shown by check) -> packs holding its content
    packs_of: dict[str, set[str]] = field(default_factory=dict)
    tree_packs: dict[str, set[str]] = field(default_factory=dict)  # "S1" -> packs of its trees
    data_pack_end: dict[str, int] = field(default_factory=dict)  # pack -> end of last blob
    first_blob: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # path -> loc

    def path(self, src: str, rel: str) -> str:
        """The path of a source file as it appears inside a snapshot."""
        return str(self.sources[src] / rel)


def _random(n: int, tag: str) -> bytes:
    return blake3.blake3(tag.encode()).digest(length=n)


def _backup(cli: AmberCli, src: Path) -> str:
    res = cli.run("backup", "--json", str(src))
    summary = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    return next(d["snapshot_id"] for d in summary if d.get("message_type") == "summary")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    root = tmp_path_factory.mktemp("corruption")
    victim = _random(3 << 20, "victim")
    files = {
        "src1": {
            "victim.bin": victim,
            "neighbor.txt": b"neighbour line\n" * 1500,
            "sub/deep.txt": b"deep down\n" * 10,
        },
        "src2": {"intact.bin": _random(2 << 20, "intact"), "intact.txt": b"fine\n" * 100},
        "src3": {"victim_copy.bin": victim, "own.txt": b"only in S3\n" * 300},
    }
    sources = {}
    for src, content in files.items():
        sources[src] = root / src
        for rel, data in content.items():
            p = root / src / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
    repo_path = root / "repo"
    cli = AmberCli(repo_path, root)
    cli.run("init")
    snaps: dict[str, str] = {}
    index_files: dict[str, list[str]] = {}
    seen: set[str] = set()
    for i, src in enumerate(files, 1):
        snaps[f"S{i}"] = _backup(cli, sources[src])
        now = set(os.listdir(repo_path / "index"))
        index_files[f"S{i}"] = sorted(now - seen)
        seen = now
    t = Template(root, repo_path, sources, snaps, index_files)

    repo = open_repository(open_backend(str(repo_path)), PASSWORD.encode())
    try:
        index = repo.blobs.index
        for label, sid in snaps.items():
            snap = repo.load_snapshot(sid)
            trees = {snap.tree}
            for path, node in walk(repo.load_tree, snap.tree):
                if node.type == "dir":
                    trees.add(node.subtree)
                elif node.type == "file":
                    locs = [index.lookup(b) for b in node.content]
                    assert all(locs)
                    t.packs_of[os.fsdecode(path)] = {loc.pack for loc in locs if loc}
                    first = locs[0]
                    assert first is not None
                    t.first_blob[os.fsdecode(path)] = (first.pack, first.offset, first.length)
            t.tree_packs[label] = {loc.pack for tid in trees if (loc := index.lookup(tid))}
        for _, loc in index.blobs():
            t.data_pack_end[loc.pack] = max(t.data_pack_end.get(loc.pack, 0), loc.offset + loc.length)
    finally:
        repo.close()

    # the layout the cases rely on
    (p1,) = t.packs_of[t.path("src1", "victim.bin")]
    assert t.packs_of[t.path("src1", "neighbor.txt")] == {p1}
    assert t.packs_of[t.path("src3", "victim_copy.bin")] == {p1}
    assert p1 not in t.packs_of[t.path("src2", "intact.bin")]
    assert p1 not in t.packs_of[t.path("src3", "own.txt")]
    assert all(len(v) == 1 for v in index_files.values())
    assert p1 not in t.tree_packs["S3"]
    return t


@dataclass
class Case:
    t: Template
    cli: AmberCli
    repo: Path
    target: Path
    outputs: list[CliResult] = field(default_factory=list)

    def run(self, *args: str) -> CliResult:
        res = self.cli.run(*args, check=False)
        self.outputs.append(res)
        return res

    def pack_file(self, pack: str) -> Path:
        return self.repo / "data" / pack[:2] / pack

    @property
    def p1(self) -> str:
        (p,) = self.t.packs_of[self.t.path("src1", "victim.bin")]
        return p

    def restore(self, snap: str, *include: str) -> tuple[CliResult, Path]:
        out = self.target / f"{snap}-{len(self.outputs)}"
        args = ["restore", self.t.snaps[snap], "-t", str(out)]
        for inc in include:
            args += ["--include", inc]
        return self.run(*args), out

    def assert_restored(self, out: Path, src: str, rel: str) -> None:
        original = self.t.sources[src] / rel
        restored = out / original.relative_to("/")
        assert restored.is_file(), f"{rel} was not restored"
        assert _sha(restored) == _sha(original), f"{rel} differs from the original"

    def assert_no_traceback(self) -> None:
        for res in self.outputs:
            text = res.stdout + res.stderr
            assert "Traceback" not in text, text
            assert "internal error" not in text, text


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x5A]))


@pytest.fixture
def case(template: Template, tmp_path: Path) -> Case:
    repo = tmp_path / "repo"
    shutil.copytree(template.repo, repo)
    return Case(template, AmberCli(repo, tmp_path), repo, tmp_path / "out")


def _assert_check_names(res: CliResult, snaps: list[str], paths: list[str], t: Template) -> None:
    text = res.stdout + res.stderr
    assert res.returncode == CHECK_FAILED, text
    for s in snaps:
        assert t.snaps[s][:8] in text, f"{s} not named:\n{text}"
    for p in paths:
        assert p in text, f"{p} not named:\n{text}"


def _assert_unaffected(c: Case, res: CliResult, snaps: list[str]) -> None:
    text = res.stdout + res.stderr
    for s in snaps:
        assert c.t.snaps[s][:8] not in text, f"undamaged {s} reported:\n{text}"


def _intact_restores(c: Case) -> None:
    """S2 shares nothing with P1 or I1: it restores fully and exactly."""
    res, out = c.restore("S2")
    assert res.returncode == 0, res.stdout + res.stderr
    c.assert_restored(out, "src2", "intact.bin")
    c.assert_restored(out, "src2", "intact.txt")


def test_template_is_healthy(case: Case) -> None:
    res = case.run("check", "--read-data")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "warning" not in res.stderr
    res, out = case.restore("S1")
    assert res.returncode == 0
    for rel in ("victim.bin", "neighbor.txt", "sub/deep.txt"):
        case.assert_restored(out, "src1", rel)


def test_flipped_byte_in_data_blob(case: Case) -> None:
    t = case.t
    victim = t.path("src1", "victim.bin")
    pack, offset, length = t.first_blob[victim]
    _flip(case.pack_file(pack), offset + length // 2)

    # structure is intact: only reading the data finds it
    plain = case.run("check")
    assert plain.returncode == 0, plain.stdout + plain.stderr
    res = case.run("check", "--read-data")
    _assert_check_names(res, ["S1", "S3"], [victim, t.path("src3", "victim_copy.bin")], t)
    _assert_unaffected(case, res, ["S2"])
    # the other blobs of the same pack are fine and not blamed
    assert "neighbor.txt" not in res.stdout + res.stderr
    assert "deep.txt" not in res.stdout + res.stderr

    _intact_restores(case)
    # restoring the damaged snapshot: exit 14, the victim is named, the rest is exact
    restore, out = case.restore("S1")
    assert restore.returncode == INTEGRITY, restore.stdout + restore.stderr
    assert "victim.bin" in restore.stderr
    case.assert_restored(out, "src1", "neighbor.txt")
    case.assert_restored(out, "src1", "sub/deep.txt")
    # and a restore limited to an intact file succeeds
    only, out = case.restore("S1", "neighbor.txt")
    assert only.returncode == 0, only.stdout + only.stderr
    case.assert_restored(out, "src1", "neighbor.txt")
    assert not (out / t.sources["src1"].relative_to("/") / "victim.bin").exists()
    case.assert_no_traceback()


def test_flipped_byte_in_pack_header(case: Case) -> None:
    t = case.t
    pack_file = case.pack_file(case.p1)
    _flip(pack_file, pack_file.stat().st_size - 10)  # inside the sealed header

    assert case.run("check").returncode == 0
    res = case.run("check", "--read-data")
    paths = [t.path("src1", "victim.bin"), t.path("src1", "neighbor.txt")]
    _assert_check_names(res, ["S1", "S3"], [*paths, t.path("src3", "victim_copy.bin")], t)
    _assert_unaffected(case, res, ["S2"])
    _intact_restores(case)
    # the blobs themselves are intact and the index still locates them
    restore, out = case.restore("S1")
    assert restore.returncode == 0, restore.stdout + restore.stderr
    case.assert_restored(out, "src1", "victim.bin")
    case.assert_no_traceback()


@pytest.mark.parametrize("where", ["in-blob", "in-header"])
def test_truncated_pack(case: Case, where: str) -> None:
    t = case.t
    victim = t.path("src1", "victim.bin")
    pack, offset, length = t.first_blob[victim]
    # in-header: every blob intact, part of the sealed header gone
    cut = offset + length // 2 if where == "in-blob" else t.data_pack_end[pack] + 20
    os.truncate(case.pack_file(pack), cut)

    res = case.run("check")
    paths = [victim, t.path("src1", "neighbor.txt"), t.path("src3", "victim_copy.bin")]
    _assert_check_names(res, ["S1", "S3"], paths, t)
    assert "truncated" in res.stderr
    _assert_unaffected(case, res, ["S2"])
    assert t.path("src3", "own.txt") not in res.stdout + res.stderr
    deep = case.run("check", "--read-data")
    _assert_check_names(deep, ["S1", "S3"], paths, t)

    _intact_restores(case)
    res3, out = case.restore("S3", "own.txt")
    assert res3.returncode == 0, res3.stdout + res3.stderr
    case.assert_restored(out, "src3", "own.txt")
    if where == "in-blob":
        restore, _ = case.restore("S1")
        assert restore.returncode == INTEGRITY, restore.stdout + restore.stderr
        assert "victim.bin" in restore.stderr
    case.assert_no_traceback()


def test_deleted_pack(case: Case) -> None:
    t = case.t
    case.pack_file(case.p1).unlink()

    res = case.run("check")
    paths = [
        t.path("src1", "victim.bin"),
        t.path("src1", "neighbor.txt"),
        t.path("src1", "sub/deep.txt"),
        t.path("src3", "victim_copy.bin"),
    ]
    _assert_check_names(res, ["S1", "S3"], paths, t)
    assert "missing" in res.stderr
    _assert_unaffected(case, res, ["S2"])
    assert case.run("check", "--read-data").returncode == CHECK_FAILED

    _intact_restores(case)
    restore, out = case.restore("S3")
    assert restore.returncode == INTEGRITY, restore.stdout + restore.stderr
    assert "victim_copy.bin" in restore.stderr
    case.assert_restored(out, "src3", "own.txt")
    case.assert_no_traceback()


def test_tampered_snapshot_file(case: Case) -> None:
    t = case.t
    snap_file = case.repo / "snapshots" / t.snaps["S1"]
    _flip(snap_file, snap_file.stat().st_size // 2)

    res = case.run("check")
    _assert_check_names(res, ["S1"], [], t)
    _assert_unaffected(case, res, ["S2", "S3"])
    _intact_restores(case)
    restore, _ = case.restore("S1")
    assert restore.returncode == INTEGRITY, restore.stdout + restore.stderr
    assert t.snaps["S1"][:8] in restore.stderr
    case.assert_no_traceback()


def test_tampered_index_file(case: Case) -> None:
    t = case.t
    (index_name,) = t.index_files["S1"]
    index_file = case.repo / "index" / index_name
    _flip(index_file, index_file.stat().st_size // 2)

    res = case.run("check")
    # S1's root tree was only in I1; S3's trees are elsewhere, so its file is named
    _assert_check_names(res, ["S1", "S3"], [t.path("src3", "victim_copy.bin")], t)
    assert index_name[:16] in res.stderr
    _assert_unaffected(case, res, ["S2"])
    assert t.path("src3", "own.txt") not in res.stdout + res.stderr

    _intact_restores(case)
    restore, out = case.restore("S3")
    assert restore.returncode == INTEGRITY, restore.stdout + restore.stderr
    assert "victim_copy.bin" in restore.stderr
    case.assert_restored(out, "src3", "own.txt")
    gone, _ = case.restore("S1")
    assert gone.returncode != 0
    case.assert_no_traceback()


def test_deleted_tree_pack(case: Case) -> None:
    t = case.t
    (tree_pack,) = t.tree_packs["S1"]
    case.pack_file(tree_pack).unlink()
    res = case.run("check")
    _assert_check_names(res, ["S1"], [], t)
    _assert_unaffected(case, res, ["S2", "S3"])
    _intact_restores(case)
    case.assert_no_traceback()


def test_one_damaged_snapshot_does_not_block_the_others(case: Case) -> None:
    t = case.t
    snap_file = case.repo / "snapshots" / t.snaps["S1"]
    _flip(snap_file, snap_file.stat().st_size // 2)
    listing = case.run("snapshots")
    assert listing.returncode == 0, listing.stdout + listing.stderr
    assert t.snaps["S2"][:8] in listing.stdout
    res = case.run("backup", str(t.sources["src2"]))
    assert res.returncode == 0, res.stdout + res.stderr
