"""The catalog never answers differently from the tree walk (issue 13).

Hypothesis drives random histories (two hosts back up, files change, snapshots are
forgotten, a snapshot arrives late as if copied in) over a real repository with
synthetic trees. After every step the catalog's answers equal the walk's, and the
incrementally kept catalog equals one rebuilt from scratch.
"""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amber.catalog import ingest, store
from amber.catalog.ingest import sync
from amber.catalog.query import FindQuery, SizeBound, ordered
from amber.catalog.search import _path_hits, _timeline_walk, _visible, catalog_hits, walk_hits
from amber.repository import Node, Repository, Snapshot, Tree, init_repository, open_repository
from amber.services.snapshots import SnapshotFilter
from amber.storage import open_backend

PASSWORD = b"catalog property"
NAMES = [b"a.txt", b"b.TXT", b"notes", b"caf\xc3\xa9.odt", b"raw\xff.bin", b"x_1.jpg",
         b"Stra\xc3\x9fe.txt", b"\xc3\x84PFEL", b".txt"]  # fmt: skip
DIRS = [b"docs", b"docs/sub", b"pics"]
TICK_NS = 10**13  # the mtime of a file changed at clock tick t is t * TICK_NS
QUERIES = [
    FindQuery(patterns=("*",)),
    FindQuery(patterns=("*.txt",)),
    FindQuery(patterns=("*.txt",), ignore_case=True),
    FindQuery(patterns=("caf*",)),
    FindQuery(patterns=("no?es", "x_1*")),
    FindQuery(patterns=("*/docs/*",)),
    FindQuery(patterns=("*",), kinds=frozenset({"dir"})),
    FindQuery(patterns=("*",), hosts=("hostB",)),
    FindQuery(patterns=("*STRASSE*", "äpfel"), ignore_case=True),
    FindQuery(patterns=("?pfel", "CAF*"), ignore_case=True),
    FindQuery(patterns=("*ss*", "*.TXT")),
    # size and date bounds: without name candidates they read the coarse index (mtimes
    # below are ~2.8 hours a clock tick apart, so the index's days differ)
    FindQuery(patterns=("*",), sizes=(SizeBound("+", 1),)),
    FindQuery(patterns=("*",), sizes=(SizeBound("-", 2),), kinds=frozenset({"file"})),
    FindQuery(patterns=("*",), newer_ns=110 * TICK_NS),
    FindQuery(patterns=("*",), older_ns=115 * TICK_NS + 1, sizes=(SizeBound("=", 2),)),
    FindQuery(patterns=("*.txt",), newer_ns=105 * TICK_NS, older_ns=125 * TICK_NS),
]

FileState = dict[bytes, tuple[int, int]]  # relative path -> (size, mtime)


def _save_tree(repo: Repository, files: FileState, prefix: bytes) -> bytes:
    """Trees for every path under ``prefix`` (directories implied by their files)."""
    names: dict[bytes, Node] = {}
    for path, (size, mtime) in files.items():
        if not path.startswith(prefix):
            continue
        rest = path[len(prefix) :]
        head, _, tail = rest.partition(b"/")
        if tail:
            if head not in names:
                sub = _save_tree(repo, files, prefix + head + b"/")
                names[head] = Node(name=head, type="dir", mode=0o755, subtree=sub)
        else:
            digest = bytes([size % 256]) * 32
            names[head] = Node(name=head, type="file", mode=0o644, size=size, mtime_ns=mtime, sha256=digest)
    tree_id, _ = repo.save_tree(Tree(nodes=[names[k] for k in sorted(names)]))
    return tree_id


def _snapshot(repo: Repository, files: FileState, host: str, when: int) -> str:
    home = _save_tree(repo, files, b"")
    root, _ = repo.save_tree(Tree(nodes=[Node(name=b"home", type="dir", mode=0o755, subtree=home)]))
    repo.blobs.flush()
    time = (dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=when)).isoformat()
    return repo.save_snapshot(Snapshot(time=time, tree=root, paths=["/home"], hostname=host, tags=[host]))


def _answers(conn, repo: Repository) -> list[list[tuple[object, ...]]]:  # type: ignore[no-untyped-def]
    out = []
    for q in QUERIES:
        from_catalog = [(h.snapshot_id, h.path, h.version()) for h in ordered(catalog_hits(conn, q))]
        from_walk = [(h.snapshot_id, h.path, h.version()) for h in ordered(walk_hits(repo, q))]
        assert from_catalog == from_walk, q
        out.append(from_catalog)
    return out


step = st.one_of(
    st.tuples(st.just("change"), st.sampled_from([*DIRS, b""]), st.sampled_from(NAMES), st.integers(0, 3)),
    st.tuples(st.just("delete"), st.integers(0, 20)),
    st.tuples(st.just("backup"), st.sampled_from(["hostA", "hostB"]), st.booleans()),
    st.tuples(st.just("forget"), st.integers(0, 20)),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=3, max_size=14))
def test_catalog_equals_tree_walk_and_rebuild(tmp_path: Path, steps: list[tuple[object, ...]]) -> None:
    case = tmp_path / f"case{next(_cases)}"
    init_repository(open_backend(str(case / "repo")), PASSWORD).close()
    repo = open_repository(open_backend(str(case / "repo")), PASSWORD)
    files: dict[str, FileState] = {"hostA": {}, "hostB": {}}
    clock = 100
    conn, _ = store.open_catalog(repo.id, case / "catalog.sqlite")
    try:
        for s in steps:
            if s[0] == "change":
                _, where, name, size = s
                path = (where + b"/" if where else b"") + name  # type: ignore[operator]
                for state in files.values():
                    state[path] = (int(size), clock * TICK_NS)  # type: ignore[call-overload]
            elif s[0] == "delete" and files["hostA"]:
                victim = sorted(files["hostA"])[int(s[1]) % len(files["hostA"])]  # type: ignore[call-overload]
                files["hostA"].pop(victim)
            elif s[0] == "backup":
                _, host, late = s
                clock += 1
                # a "late" snapshot is older than the host's newest, as a copy from elsewhere would be
                _snapshot(repo, files[str(host)], str(host), clock - 50 if late else clock)
            elif s[0] == "forget" and repo.snapshot_names():
                names = repo.snapshot_names()
                repo.remove_snapshot(names[int(s[1]) % len(names)])  # type: ignore[call-overload]
            clock += 1
            result = sync(conn, repo)
            assert not result.failed
            incremental = _answers(conn, repo)
        rebuilt, _ = store.open_catalog(repo.id, case / "fresh.sqlite")
        try:
            with mock.patch.object(ingest, "_COMPACT_AFTER", 0):  # a rebuild is compacted (VACUUM)
                sync(rebuilt, repo)
            assert rebuilt.execute("PRAGMA quick_check").fetchone() == ("ok",)
            assert _answers(rebuilt, repo) == incremental
            assert _version_rows(rebuilt) == _version_rows(conn)
        finally:
            rebuilt.close()
    finally:
        conn.close()
        repo.close()


_cases = itertools.count()


def _version_rows(conn) -> dict[tuple[object, ...], frozenset[str]]:  # type: ignore[no-untyped-def]
    """What the catalog holds, independent of how rows split: version -> the snapshots it is in.

    Sequence numbers follow ingestion order, so a late snapshot may split a version
    into other rows than a rebuild would; what each version covers must not differ.
    """
    rows = conn.execute(
        "SELECT l.host, v.did, n.raw, v.kind, v.size, v.mtime, v.first_seq, v.last_seq, v.lid"
        " FROM ver v JOIN lineage l USING (lid) JOIN name n USING (nid)"
    ).fetchall()
    out: dict[tuple[object, ...], frozenset[str]] = {}
    for host, did, raw, kind, size, mtime, first, last, lid in rows:
        members = {
            r[0] for r in conn.execute(
                "SELECT snap_id FROM snap WHERE lid = ? AND seq >= ? AND (? IS NULL OR seq <= ?)",
                (lid, first, last, last),
            )
        }  # fmt: skip
        key = (host, _dir_path(conn, did), bytes(raw), kind, size, mtime)
        assert not members & out.get(key, frozenset()), f"{key} counted twice"
        out[key] = out.get(key, frozenset()) | members
    return out


def _dir_path(conn, did: int) -> bytes:  # type: ignore[no-untyped-def]
    parts = []
    while did:
        did, raw = conn.execute("SELECT d.parent, n.raw FROM dir d JOIN name n USING (nid) WHERE d.did = ?",
                                (did,)).fetchone()  # fmt: skip
        parts.append(bytes(raw))
    return b"/".join(reversed(parts))


@pytest.mark.parametrize("pattern", ["*.txt", "a*", "*"])
def test_empty_repository_has_no_answers(tmp_path: Path, pattern: str) -> None:
    init_repository(open_backend(str(tmp_path / "repo")), PASSWORD).close()
    repo = open_repository(open_backend(str(tmp_path / "repo")), PASSWORD)
    conn, _ = store.open_catalog(repo.id, tmp_path / "c.sqlite")
    sync(conn, repo)
    assert list(catalog_hits(conn, FindQuery(patterns=(pattern,)))) == []
    conn.close()
    repo.close()


def test_a_node_type_amber_does_not_know_is_kept(tmp_path: Path) -> None:
    """Types are stored as small integers; a crafted tree's other type stays text, as the walk reports it."""
    init_repository(open_backend(str(tmp_path / "repo")), PASSWORD).close()
    repo = open_repository(open_backend(str(tmp_path / "repo")), PASSWORD)
    sock = Node(name=b"s.sock", type="socket", mode=0o600)
    nodes = [sock, Node(name=b"z", type="file", size=3, sha256=b"1" * 32)]
    home, _ = repo.save_tree(Tree(nodes=nodes))
    root, _ = repo.save_tree(Tree(nodes=[Node(name=b"home", type="dir", subtree=home)]))
    repo.blobs.flush()
    repo.save_snapshot(Snapshot(time="2026-01-01T00:00:00+00:00", tree=root, paths=["/home"], hostname="h"))
    conn, _ = store.open_catalog(repo.id, tmp_path / "c.sqlite")
    try:
        sync(conn, repo)
        for query in (FindQuery(patterns=("*",)), FindQuery(patterns=("*",), kinds=frozenset({"socket"}))):
            from_catalog = [(h.path, h.kind) for h in ordered(catalog_hits(conn, query))]
            assert from_catalog == [(h.path, h.kind) for h in ordered(walk_hits(repo, query))]
            assert (b"/home/s.sock", "socket") in from_catalog
    finally:
        conn.close()
        repo.close()


def test_names_whose_hashes_collide_are_told_apart(tmp_path: Path) -> None:
    """Names are found by a 32-bit hash and then compared byte for byte: with a hash that
    collides all the time, every answer is still the walk's."""

    def weak_hash(raw: bytes) -> int:
        return len(raw) % 3

    init_repository(open_backend(str(tmp_path / "repo")), PASSWORD).close()
    repo = open_repository(open_backend(str(tmp_path / "repo")), PASSWORD)
    places = [d + b"/" + n for d in DIRS for n in NAMES] + NAMES
    files: FileState = {path: (len(path), 100 * TICK_NS) for path in places}
    conn, _ = store.open_catalog(repo.id, tmp_path / "c.sqlite")
    try:
        with mock.patch.object(store, "name_hash", weak_hash), \
                mock.patch.object(ingest, "name_hash", weak_hash):  # fmt: skip
            _snapshot(repo, files, "hostA", 1)
            assert not sync(conn, repo).failed
            files[b"docs/a.txt"] = (9, 101 * TICK_NS)
            del files[b"pics/notes"]
            _snapshot(repo, files, "hostA", 2)
            assert not sync(conn, repo).failed
            assert conn.execute("SELECT count(DISTINCT amber_name_hash(raw)) FROM name").fetchone()[0] <= 3
            names = {*NAMES, b"home", *(part for d in DIRS for part in d.split(b"/"))}
            assert conn.execute("SELECT count(*) FROM name").fetchone()[0] == len(names)
            _answers(conn, repo)
            everything = FindQuery(patterns=("*",))
            visible = _visible(conn, everything)
            for path in [b"/home/" + p for p in (*files, b"pics/notes")]:
                by_catalog = {sid: h.version() for sid, h in _path_hits(conn, visible, path).items()}
                timeline = _timeline_walk(repo, path, SnapshotFilter([], [], []))
                walked = {sid: h.version() for sid, _, h in timeline if h is not None}
                assert by_catalog == walked, path
    finally:
        conn.close()
        repo.close()
