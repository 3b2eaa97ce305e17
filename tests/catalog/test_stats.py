"""amber stats: the pure grouping rules, and catalog == tree walk for every grouping."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amber.catalog import store
from amber.catalog.ingest import sync
from amber.catalog.stats import (
    AGE_BUCKETS,
    BY,
    SIZE_BUCKETS,
    FileEntry,
    Group,
    SnapshotStats,
    bucket,
    bucket_sql,
    dir_group,
    fold,
    growth,
    largest,
    ordered_groups,
    time_ns,
    type_label,
)
from amber.catalog.statsource import catalog_stats, snapshot_stats, walk_stats
from amber.repository import Node, Repository, Snapshot, Tree, init_repository, open_repository
from amber.services.snapshots import SnapshotFilter
from amber.storage import open_backend
from tests.conftest import AmberCli

DAY = 86_400 * 10**9
KIB = 1024

# -- pure rules -------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "label"),
    [(0, "0 B"), (1, "< 4 KiB"), (4 * KIB - 1, "< 4 KiB"), (4 * KIB, "4-64 KiB"),
     (KIB**2 - 1, "64 KiB-1 MiB"), (KIB**2, "1-16 MiB"), (256 * KIB**2, "256 MiB-4 GiB"),
     (4 * KIB**3, ">= 4 GiB"), (10**15, ">= 4 GiB")],
)  # fmt: skip
def test_size_buckets(size: int, label: str) -> None:
    assert SIZE_BUCKETS[bucket(size, SIZE_BUCKETS)][1] == label


@pytest.mark.parametrize(
    ("age", "label"),
    [(-1, "newer than the snapshot"), (0, "< 1 day"), (DAY - 1, "< 1 day"), (DAY, "1-7 days"),
     (29 * DAY, "7-30 days"), (30 * DAY, "30-365 days"), (400 * DAY, "1-3 years"), (4000 * DAY, "> 3 years")],
)  # fmt: skip
def test_age_buckets(age: int, label: str) -> None:
    assert AGE_BUCKETS[bucket(age, AGE_BUCKETS)][1] == label


@settings(max_examples=200, deadline=None)
@given(st.integers(-(2**62), 2**62))
def test_sql_buckets_agree_with_python(value: int) -> None:
    conn = sqlite3.connect(":memory:")
    for table in (SIZE_BUCKETS, AGE_BUCKETS):
        (got,) = conn.execute(f"SELECT {bucket_sql(':v', table)}", {"v": value}).fetchone()
        assert got == bucket(value, table)


@pytest.mark.parametrize(
    ("name", "label"),
    [(b"a.JPG", "jpg"), (b"archive.tar.gz", "gz"), (b"Makefile", "(none)"), (b".bashrc", "(none)"),
     (b"x.", "(none)"), (b"raw\xff.bin", "bin")],
)  # fmt: skip
def test_type_label(name: bytes, label: str) -> None:
    assert type_label(name) == label


@pytest.mark.parametrize(
    ("parent", "roots", "group"),
    [
        (b"/home/me", [b"/home/me"], b"/home/me"),  # right in the backed-up path
        (b"/home/me/docs", [b"/home/me"], b"/home/me/docs"),
        (b"/home/me/docs/a/b", [b"/home/me"], b"/home/me/docs"),
        (b"/home/me/docs/a", [b"/home/me", b"/home/me/docs"], b"/home/me/docs/a"),  # the longest root
        (b"/home/meow/x", [b"/home/me"], b"/home/meow/x"),  # not a prefix by bytes alone
        (b"/etc/ssh", [b"/"], b"/etc"),
        (b"", [b"/"], b"/"),
        (b"/home/me", [b"/home/me/file.txt"], b"/home/me"),  # a root that is a file
        (b"/srv/www/site", [b"/home/me/", b"/srv/www/"], b"/srv/www/site"),
    ],
)
def test_dir_group(parent: bytes, roots: list[bytes], group: bytes) -> None:
    assert dir_group(parent, roots) == group


def test_fold_and_order() -> None:
    entries = [FileEntry(b"/r/a.txt", 10, 0), FileEntry(b"/r/d/b.txt", 5, 0),
               FileEntry(b"/r/d/c.jpg", 100, 0)]  # fmt: skip
    assert fold("type", entries, 0, [b"/r"]) == {"txt": (2, 15), "jpg": (1, 100)}
    assert fold("dir", entries, 0, [b"/r"]) == {"/r": (1, 10), "/r/d": (2, 105)}
    assert fold("age", entries, DAY, [b"/r"]) == {"1-7 days": (3, 115)}
    assert ordered_groups("type", {"a": (1, 5), "b": (9, 5), "c": (1, 50)}) == [
        Group("c", 1, 50), Group("a", 1, 5), Group("b", 9, 5)]  # fmt: skip
    by_size = ordered_groups("size", {">= 4 GiB": (1, 1), "0 B": (1, 0), "< 4 KiB": (1, 1)})
    assert [g.key for g in by_size] == ["0 B", "< 4 KiB", ">= 4 GiB"]


def test_largest_breaks_ties_by_path() -> None:
    files = [(b"/b", 5), (b"/a", 5), (b"/c", 9), (b"/d", 1)]
    assert largest(files, 3) == [(b"/c", 9), (b"/a", 5), (b"/b", 5)]


def test_growth_lists_only_changed_groups() -> None:
    before = SnapshotStats("p", "t0", "type", 3, 30, groups=[Group("txt", 2, 20), Group("jpg", 1, 10)])
    after = SnapshotStats("c", "t1", "type", 3, 45, groups=[Group("txt", 2, 20), Group("png", 1, 25)])
    change = growth(after, before)
    assert (change.previous_id, change.files, change.size) == ("p", 0, 15)
    assert change.groups == {"jpg": (-1, -10), "png": (1, 25)}


def test_time_ns_is_exact() -> None:
    moment = dt.datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=dt.UTC)
    assert time_ns(moment) == 1767225600_123456000


# -- the catalog and the tree walk agree -------------------------------------

NAMES = [b"a.txt", b"B.TXT", b"img.jpg", b"Makefile", b".hidden", b"raw\xff.bin", b"big.iso"]
DIRS = [b"", b"docs", b"docs/deep", b"media"]
SNAP_T0 = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def _tree(repo: Repository, files: dict[bytes, tuple[int, int]], prefix: bytes) -> bytes:
    nodes: dict[bytes, Node] = {}
    for path, (size, age_days) in files.items():
        if not path.startswith(prefix):
            continue
        head, _, tail = path[len(prefix) :].partition(b"/")
        if tail:
            if head not in nodes:
                nodes[head] = Node(name=head, type="dir", subtree=_tree(repo, files, prefix + head + b"/"))
        else:
            mtime = time_ns(SNAP_T0) - age_days * DAY
            digest = bytes([size % 256]) * 32
            nodes[head] = Node(name=head, type="file", size=size, mtime_ns=mtime, sha256=digest)
    nodes.setdefault(b"ln", Node(name=b"ln", type="symlink", link_target=b"a.txt"))
    tree_id, _ = repo.save_tree(Tree(nodes=[nodes[k] for k in sorted(nodes)]))
    return tree_id


def _snapshot(repo: Repository, files: dict[bytes, tuple[int, int]], host: str, hours: int) -> str:
    home = _tree(repo, files, b"")
    me, _ = repo.save_tree(Tree(nodes=[Node(name=b"me", type="dir", subtree=home)]))
    root, _ = repo.save_tree(Tree(nodes=[Node(name=b"home", type="dir", subtree=me)]))
    repo.blobs.flush()
    when = (SNAP_T0 + dt.timedelta(hours=hours)).isoformat()
    return repo.save_snapshot(Snapshot(time=when, tree=root, paths=["/home/me"], hostname=host))


def _agree(conn: sqlite3.Connection, repo: Repository, top: int) -> None:
    for sid, snap in repo.snapshots().items():
        for by in BY:
            assert catalog_stats(conn, sid, by, top) == walk_stats(repo, sid, snap, by, top), (sid, by)


_cases = itertools.count()
change = st.tuples(
    st.sampled_from(DIRS), st.sampled_from(NAMES), st.sampled_from([0, 1, 5000, 70_000, 2 << 20, 2 << 20]),
    st.sampled_from([-2, 0, 3, 10, 100, 500, 2000]),
)  # fmt: skip


@pytest.mark.slow
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.one_of(change, st.sampled_from(["backup-A", "backup-B", "delete", "forget"])),
                      min_size=2, max_size=10))  # fmt: skip
def test_catalog_and_walk_give_identical_figures(tmp_path: Path, steps: list[object]) -> None:
    case = tmp_path / f"case{next(_cases)}"
    init_repository(open_backend(str(case / "repo")), b"stats").close()
    repo = open_repository(open_backend(str(case / "repo")), b"stats")
    conn, _ = store.open_catalog(repo.id, case / "catalog.sqlite")
    files: dict[bytes, tuple[int, int]] = {}
    try:
        for hours, step in enumerate(steps):
            if isinstance(step, tuple):
                where, name, size, age = step
                files[(where + b"/" if where else b"") + name] = (size, age)
            elif step == "delete" and files:
                files.pop(sorted(files)[0])
            elif step == "forget" and repo.snapshot_names():
                repo.remove_snapshot(repo.snapshot_names()[0])
            elif isinstance(step, str) and step.startswith("backup"):
                _snapshot(repo, files, step[-1], hours)
            assert not sync(conn, repo).failed
            _agree(conn, repo, top=2)
    finally:
        conn.close()
        repo.close()


def test_growth_from_catalog_and_walk(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    files = {b"a.txt": (10, 1), b"docs/b.jpg": (5000, 40), b"media/big.iso": (2 << 20, 900)}
    _snapshot(repo, files, "A", 0)
    _snapshot(repo, {b"other.txt": (1, 1)}, "B", 1)  # another host: not the previous one
    files[b"docs/c.jpg"] = (7000, 0)
    files.pop(b"a.txt")
    last = _snapshot(repo, files, "A", 2)
    notes: list[str] = []
    for by in BY:
        from_catalog = snapshot_stats(repo, last, SnapshotFilter(), by, 5, True, notes.append)
        from_walk = snapshot_stats(repo, last, SnapshotFilter(), by, 5, False, notes.append)
        assert from_catalog == from_walk
    assert notes == []
    assert store.catalog_path(repo.id).exists()  # the catalog answered
    stats, change = snapshot_stats(repo, "latest", SnapshotFilter(hosts=["A"]), "type", 5, True, notes.append)
    assert change is not None
    assert (stats.files, change.files, change.size) == (3, 0, 6990)
    assert change.groups == {"txt": (-1, -10), "jpg": (1, 7000)}
    assert stats.largest[0] == (b"/home/me/media/big.iso", 2 << 20)


@pytest.mark.slow
def test_cli_json(cli: AmberCli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "docs").mkdir(parents=True)
    (src / "docs" / "a.txt").write_bytes(b"x" * 100)
    (src / "b.jpg").write_bytes(b"y" * 5000)
    cli.run("backup", str(src))
    (src / "c.jpg").write_bytes(b"z" * 10)
    cli.run("backup", str(src))
    catalog = json.loads(cli.run("stats", "--json").stdout)
    walked = json.loads(cli.run("stats", "--json", "--no-catalog").stdout)
    assert catalog == walked
    groups = [(g["key"], g["files"], g["bytes"]) for g in catalog["groups"]]
    assert groups == [("jpg", 2, 5010), ("txt", 1, 100)]
    assert catalog["growth"]["files"] == 1 and catalog["growth"]["bytes"] == 10
    by_dir = cli.run("stats", "--by", "dir", "--top", "1").stdout
    rows = by_dir.split("by dir")[1].split("largest files")[0].strip().splitlines()[1:]
    assert len(rows) == 1 and rows[0].split()[0] == str(src)  # src (5010 B) before src/docs (100 B)
    assert cli.run("stats", "--by", "bad", check=False).returncode == 2
