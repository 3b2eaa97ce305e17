"""The mounted view's core, called directly: listings, names, reads, the blob cache, refresh.

Real FUSE mounts are in test_mount_fuse.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from amber.catalog import store
from amber.catalog.blobcache import BlobCache, FileContent
from amber.catalog.mountfs import MountFS
from amber.catalog.mountnames import dated_names, group_names, id_names, valid_name, version_names
from amber.catalog.mountversions import CatalogVersions, TreeEntries, TreeVersions
from amber.errors import NotFound
from amber.repository import BlobType, Node, Repository, Snapshot, Tree, init_repository, open_repository
from amber.services.prune import PruneOptions, prune
from amber.storage import open_backend
from amber.storage.base import FileType
from tests.conftest import PASSWORD

T1, T2, T3 = "2026-01-01T10:00:00+00:00", "2026-01-02T10:00:00+00:00", "2026-01-03T10:00:00+00:00"
BIG = bytes(range(256)) * 1500  # 384,000 bytes in three blobs of unequal size
BLOB_SIZES = (100_000, 37, 283_963)


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Directory names show times in the local zone: make it UTC so names are known."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


# -- pure naming rules ---------------------------------------------------


@pytest.mark.parametrize(
    ("name", "ok"),
    [(b"a", True), (b"caf\xc3\xa9", True), (b"raw\xff", True), (b"...", True), (b"a@b", True),
     (b"", False), (b".", False), (b"..", False), (b"a/b", False), (b"/", False), (b"x\0y", False)],
)  # fmt: skip
def test_valid_name(name: bytes, ok: bool) -> None:
    assert valid_name(name) is ok


def _t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ([], {}),
        ([("b", _t(T2)), ("a", _t(T1))], {T1.encode(): "a", T2.encode(): "b"}),
        # equal times: -1, -2 in ID order, as restic
        ([("c", _t(T1)), ("a", _t(T1)), ("b", _t(T1))],
         {T1.encode(): "a", T1.encode() + b"-1": "b", T1.encode() + b"-2": "c"}),
        # sub-second differences collapse to the same second
        ([("x", _t("2026-01-01T10:00:00.5+00:00")), ("y", _t(T1))],
         {T1.encode(): "y", T1.encode() + b"-1": "x"}),
        # other zones are shown in the local one
        ([("z", _t("2026-01-01T11:00:00+01:00"))], {T1.encode(): "z"}),
    ],
)  # fmt: skip
def test_dated_names(items: list[tuple[str, dt.datetime]], expected: dict[bytes, str]) -> None:
    names = dated_names(items)
    assert names == expected
    assert list(names) == list(expected)  # time order: the last is the newest


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        (["aaaaaaaa11", "bbbbbbbb22"], {b"aaaaaaaa": "aaaaaaaa11", b"bbbbbbbb": "bbbbbbbb22"}),
        (["aaaaaaaa11", "aaaaaaaa22", "cccccccc"],
         {b"aaaaaaaa11": "aaaaaaaa11", b"aaaaaaaa22": "aaaaaaaa22", b"cccccccc": "cccccccc"}),
    ],
)  # fmt: skip
def test_id_names(ids: list[str], expected: dict[bytes, str]) -> None:
    assert id_names(ids) == expected


def test_group_names_skip_what_cannot_be_a_name() -> None:
    assert group_names(["web", "..", "a/b", "", "ok\0", "café"]) == {b"web": "web", b"caf\xc3\xa9": "café"}


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ([T1], [b"f@" + T1.encode()]),
        ([T1, T2], [b"f@" + T1.encode(), b"f@" + T2.encode()]),
        ([T1, T1], [b"f@" + T1.encode(), b"f@" + T1.encode() + b"-1"]),
    ],
)
def test_version_names(times: list[str], expected: list[bytes]) -> None:
    assert version_names(b"f", [_t(t) for t in times]) == expected


# -- a repository with hand-made trees -----------------------------------


def _file(repo: Repository, name: bytes, data: bytes, sizes: tuple[int, ...] = (), mtime: int = 1) -> Node:
    """A file node whose content is split into blobs of the given sizes (one blob if none)."""
    content, pos = [], 0
    for size in sizes or (len(data),):
        piece = data[pos : pos + size]
        blob_id = repo.key.blob_id(piece)
        repo.blobs.save(BlobType.DATA, piece, blob_id)
        content.append(blob_id)
        pos += size
    assert pos == len(data)
    return Node(name=name, type="file", mode=0o644, size=len(data), mtime_ns=mtime * 10**9,
                content=content if data else [], sha256=hashlib.sha256(data).digest())  # fmt: skip


def _dir(repo: Repository, name: bytes, nodes: list[Node]) -> Node:
    tree_id, _ = repo.save_tree(Tree(nodes=sorted(nodes, key=lambda n: n.name)))
    return Node(name=name, type="dir", mode=0o755, subtree=tree_id)


def _snapshot(repo: Repository, when: str, host: str, tags: list[str], nodes: list[Node]) -> str:
    root, _ = repo.save_tree(Tree(nodes=sorted(nodes, key=lambda n: n.name)))
    repo.blobs.flush()
    return repo.save_snapshot(Snapshot(time=when, tree=root, paths=["/data"], hostname=host, tags=tags))


def _history(repo: Repository) -> dict[str, str]:
    """Three snapshots: a.txt changes, big.bin spans three blobs, a link."""
    a1 = _file(repo, b"a.txt", b"one\n", mtime=1)
    a2 = _file(repo, b"a.txt", b"two two\n", mtime=2)
    big = _file(repo, b"big.bin", BIG, BLOB_SIZES)
    link = Node(name=b"link", type="symlink", mode=0o777, link_target=b"a.txt", mtime_ns=5)
    # Trees with hostile names are refused when encoded or decoded (tests/engine/test_hostile_trees.py);
    # the mount's own name filter is tested on its own above.
    docs1 = _dir(repo, b"docs", [a1, big, link])
    docs2 = _dir(repo, b"docs", [a2, big, link])
    s1 = _snapshot(repo, T1, "hostA", ["daily"], [_dir(repo, b"data", [docs1])])
    s2 = _snapshot(repo, T2, "hostA", ["daily", "../escape"], [_dir(repo, b"data", [docs2])])
    s3 = _snapshot(repo, T3, "hostB", [], [_dir(repo, b"data", [docs1, _file(repo, b"only.b", b"b")])])
    return {"s1": s1, "s2": s2, "s3": s3}


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Repository, dict[str, str]]]:
    """One repository with the history for the tests that only read."""
    where = str(tmp_path_factory.mktemp("mount") / "repo")
    init_repository(open_backend(where), b"mount").close()
    repo = open_repository(open_backend(where), b"mount")
    yield repo, _history(repo)
    repo.close()


@pytest.fixture
def history(shared: tuple[Repository, dict[str, str]]) -> dict[str, str]:
    return shared[1]


@pytest.fixture
def fs(shared: tuple[Repository, dict[str, str]]) -> Iterator[MountFS]:
    view = MountFS(shared[0])
    yield view
    view.close()


def test_listings(fs: MountFS, history: dict[str, str]) -> None:
    t1, t2, t3 = T1.encode(), T2.encode(), T3.encode()
    s1, s2, s3 = (history[k][:8].encode() for k in ("s1", "s2", "s3"))
    expected: dict[bytes, list[bytes]] = {
        b"/": [b"hosts", b"ids", b"snapshots", b"tags", b"versions"],
        b"/snapshots": sorted([t1, t2, t3, b"latest"]),
        b"/ids": sorted([s1, s2, s3]),
        b"/hosts": [b"hostA", b"hostB"],
        b"/hosts/hostA": [t1, t2, b"latest"],
        b"/hosts/hostB": [t3, b"latest"],
        b"/tags": [b"daily"],  # "../escape" is not a name
        b"/tags/daily": [t1, t2, b"latest"],
        b"/snapshots/" + t1: [b"data"],
        b"/snapshots/" + t1 + b"/data/docs": [b"a.txt", b"big.bin", b"link"],
        b"/ids/" + s3 + b"/data": [b"docs", b"only.b"],
        b"/hosts/hostA/" + t2 + b"/data/docs": [b"a.txt", b"big.bin", b"link"],
        b"/versions": [b"data"],
        b"/versions/data": [b"docs", b"only.b"],
        b"/versions/data/docs": [b"a.txt", b"big.bin", b"link"],
        b"/versions/data/docs/a.txt": [b"a.txt@" + t1, b"a.txt@" + t2],
        b"/versions/data/docs/big.bin": [b"big.bin@" + t1],
        b"/versions/data/docs/link": [b"link@" + t1],
        b"/versions/data/only.b": [b"only.b@" + t3],
    }
    for path, names in expected.items():
        assert fs.readdir(path) == names, path


def test_latest_links_follow_the_newest(fs: MountFS) -> None:
    assert fs.readlink(b"/snapshots/latest") == T3.encode()
    assert fs.readlink(b"/hosts/hostA/latest") == T2.encode()
    assert fs.readlink(b"/tags/daily/latest") == T2.encode()
    assert fs.getattr(b"/snapshots/latest").kind == "symlink"


@pytest.mark.parametrize(
    "path",
    [b"/nope", b"/snapshots/latest/data", b"/snapshots/2020-01-01T00:00:00+00:00", b"/ids/00000000",
     b"/hosts/hostC", b"/snapshots/" + T1.encode() + b"/data/docs/..", b"/versions/data/docs/a.txt/a.txt@x",
     b"/snapshots/" + T1.encode() + b"/data/docs/a.txt/below", b"/versions/missing"],
)  # fmt: skip
def test_missing_paths(fs: MountFS, path: bytes) -> None:
    with pytest.raises(NotFound):
        fs.getattr(path)


def test_attributes(fs: MountFS, history: dict[str, str]) -> None:
    big = fs.getattr(b"/ids/" + history["s1"].encode() + b"/data/docs/big.bin")  # a full ID works too
    assert (big.kind, big.size, big.mode, big.mtime_ns) == ("file", len(BIG), 0o644, 10**9)
    assert big.st_mode == 0o100644
    link = fs.getattr(b"/snapshots/" + T1.encode() + b"/data/docs/link")
    assert (link.kind, link.size) == ("symlink", len(b"a.txt"))
    assert fs.readlink(b"/snapshots/" + T1.encode() + b"/data/docs/link") == b"a.txt"
    assert fs.readlink(b"/versions/data/docs/link/link@" + T1.encode()) == b"a.txt"
    version = fs.getattr(b"/versions/data/docs/a.txt/a.txt@" + T2.encode())
    assert (version.kind, version.size, version.mtime_ns) == ("file", 8, 2 * 10**9)
    assert fs.getattr(b"/versions/data/docs").kind == "dir"


@pytest.mark.parametrize(
    ("offset", "size"),
    [(0, 1), (0, 100_000), (99_999, 2), (100_000, 37), (100_036, 2), (99_990, 100), (5, 383_990),
     (123_456, 131_072), (len(BIG) - 1, 10), (len(BIG), 5), (len(BIG) + 100, 5), (0, len(BIG) + 1000)],
)  # fmt: skip
def test_reads_at_odd_offsets_span_blobs(fs: MountFS, offset: int, size: int) -> None:
    path = b"/snapshots/latest/data/docs/big.bin".replace(b"latest", T3.encode())
    assert fs.read(path, offset, size) == BIG[offset : offset + size]
    handle = fs.open(path)
    assert fs.read_handle(handle, offset, size) == BIG[offset : offset + size]
    fs.release(handle)


def test_versions_read_their_own_content(fs: MountFS) -> None:
    assert fs.read(b"/versions/data/docs/a.txt/a.txt@" + T1.encode(), 0, 100) == b"one\n"
    assert fs.read(b"/versions/data/docs/a.txt/a.txt@" + T2.encode(), 4, 100) == b"two\n"
    assert fs.read(b"/versions/data/docs/big.bin/big.bin@" + T1.encode(), 99_999, 3) == BIG[99_999:100_002]


def test_directories_and_links_are_not_read(fs: MountFS) -> None:
    for path in (b"/snapshots", b"/versions/data/docs/a.txt", b"/snapshots/latest"):
        with pytest.raises(NotFound):
            fs.read(path, 0, 10)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_new_snapshots_appear_after_the_refresh_interval(repo: Repository) -> None:
    history = _history(repo)
    clock = _Clock()
    notices: list[str] = []
    fs = MountFS(repo, refresh_interval=5, clock=clock, notice=notices.append)
    try:
        t4 = "2026-01-04T10:00:00+00:00"
        _snapshot(repo, t4, "hostA", [], [_dir(repo, b"data", [_file(repo, b"new.txt", b"new")])])
        clock.now = 4.9
        assert fs.readlink(b"/snapshots/latest") == T3.encode()  # not listed again yet
        clock.now = 5.0
        assert fs.readlink(b"/snapshots/latest") == t4.encode()
        assert fs.readlink(b"/hosts/hostA/latest") == t4.encode()
        assert fs.read(b"/snapshots/" + t4.encode() + b"/data/new.txt", 0, 10) == b"new"
        assert b"new.txt" in fs.readdir(b"/versions/data")
        repo.remove_snapshot(history["s3"])  # forgotten elsewhere: gone after the next listing
        damaged = "ab" * 32  # a snapshot file that does not match its name: left out, noticed once
        (Path(repo.backend.location) / "snapshots" / damaged).write_bytes(b"junk")
        clock.now = 10.0
        assert T3.encode() not in fs.readdir(b"/snapshots")
        assert b"only.b" not in fs.readdir(b"/versions/data")
        assert b"abababab" not in fs.readdir(b"/ids")
        clock.now = 20.0
        assert len(fs.readdir(b"/ids")) == 3
        assert len(notices) == 1 and "abababab left out" in notices[0]
    finally:
        fs.close()


def test_a_failing_catalog_hands_over_to_the_trees(repo: Repository, tmp_path: Path) -> None:
    _history(repo)
    conn, _ = store.open_catalog(repo.id, tmp_path / "catalog.sqlite")
    notices: list[str] = []
    fs = MountFS(repo, CatalogVersions(repo, conn), notice=notices.append)
    try:
        assert fs.readdir(b"/versions/data") == [b"docs", b"only.b"]
        conn.close()  # the catalog becomes unusable while mounted
        assert fs.readdir(b"/versions/data/docs") == [b"a.txt", b"big.bin", b"link"]
        assert isinstance(fs.versions, TreeVersions)
        assert len(notices) == 1 and "from the trees" in notices[0]
    finally:
        fs.close()


def test_reads_survive_a_prune_that_moved_the_blobs(repo: Repository, tmp_path: Path) -> None:
    kept = _file(repo, b"kept.bin", BIG, BLOB_SIZES)
    gone = _file(repo, b"gone.bin", bytes(300_000))  # in the same pack as kept.bin's blobs
    _snapshot(repo, T1, "hostA", [], [_dir(repo, b"data", [kept])])
    dropped = _snapshot(repo, T2, "hostA", [], [gone])
    view = open_repository(open_backend(repo.backend.location), PASSWORD.encode())  # its own index
    fs = MountFS(view)
    try:
        path = b"/snapshots/" + T1.encode() + b"/data/kept.bin"
        repo.remove_snapshot(dropped)
        result = prune(repo, PruneOptions(max_unused="0"))
        assert result.deleted_packs >= 1  # kept.bin's blobs now live in another pack
        packs = {fi.name for fi in repo.backend.list(FileType.PACK)}
        assert view.blobs.locate(kept.content[0]).pack not in packs  # the mount's index is out of date
        assert fs.read(path, 99_990, 100) == BIG[99_990:100_090]
    finally:
        fs.close()
        view.close()


# -- catalog and trees give the same versions view ------------------------


def _walk(fs: MountFS, path: bytes = b"/versions") -> dict[bytes, tuple[str, int, int, list[bytes]]]:
    out: dict[bytes, tuple[str, int, int, list[bytes]]] = {}
    attr = fs.getattr(path)
    names = fs.readdir(path) if attr.kind == "dir" else []
    out[path] = (attr.kind, attr.size, 0 if attr.kind == "dir" else attr.mtime_ns, names)
    for name in names:
        out.update(_walk(fs, path + b"/" + name))
    return out


def test_catalog_and_trees_list_the_same_versions(repo: Repository, tmp_path: Path) -> None:
    _history(repo)
    # one more snapshot, late (older than the others), as a copy from elsewhere would arrive
    again = _dir(repo, b"docs", [_file(repo, b"a.txt", b"two two\n", mtime=2)])
    _snapshot(repo, "2025-12-31T10:00:00+00:00", "hostA", [], [_dir(repo, b"data", [again])])
    conn, _ = store.open_catalog(repo.id, tmp_path / "catalog.sqlite")
    by_trees = MountFS(repo)
    by_catalog = MountFS(repo, CatalogVersions(repo, conn))
    try:
        from_trees = _walk(by_trees)
        assert _walk(by_catalog) == from_trees
        # the late snapshot is now the first to hold "two two": that version is named by it
        assert b"a.txt@2025-12-31T10:00:00+00:00" in from_trees[b"/versions/data/docs/a.txt"][3]
        trees = TreeVersions(TreeEntries(repo.load_tree))
        trees.update(sorted(repo.snapshots().items(), key=lambda i: (i[1].datetime, i[0])))
        for path in (b"", b"/data", b"/data/docs", b"/data/docs/a.txt", b"/nope"):
            assert by_catalog.versions.children(path) == trees.children(path)
            assert by_catalog.versions.versions(path) == trees.versions(path)
    finally:
        by_trees.close()
        by_catalog.close()


# -- the blob cache ---------------------------------------------------------


class _Blobs:
    """Blobs in memory, counting loads; one blob can be made to fail."""

    def __init__(self, blobs: dict[bytes, bytes]) -> None:
        self.blobs = blobs
        self.loads: list[bytes] = []
        self.failing: set[bytes] = set()
        self.lock = threading.Lock()

    def __call__(self, blob_id: bytes) -> bytes:
        with self.lock:
            self.loads.append(blob_id)
        if blob_id in self.failing:
            raise NotFound("gone")
        return self.blobs[blob_id]


def _content(n: int, size: int, capacity: int) -> tuple[FileContent, BlobCache, _Blobs, bytes]:
    blobs = {bytes([i]) * 4: bytes([i]) * size for i in range(n)}
    source = _Blobs(blobs)
    cache = BlobCache(source, capacity)
    return FileContent(list(blobs), [size] * n, cache), cache, source, b"".join(blobs.values())


def _wait_for(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_cache_stays_bounded_while_reading_everything() -> None:
    content, cache, source, data = _content(n=40, size=10_000, capacity=35_000)
    for offset in range(0, len(data), 7_777):
        assert content.read(offset, 7_777) == data[offset : offset + 7_777]
        assert cache.cached_bytes <= cache.capacity
    _wait_for(lambda: not cache._loading)
    assert cache.cached_bytes <= 35_000
    assert len(set(source.loads)) == 40
    first = len(source.loads)
    assert content.read(0, 1) == data[:1]  # long evicted: loaded again
    assert len(source.loads) == first + 1
    cache.close()


def test_readahead_loads_the_next_blob() -> None:
    content, cache, source, data = _content(n=3, size=1000, capacity=1 << 20)
    assert content.read(10, 20) == data[10:30]
    _wait_for(lambda: bytes([1]) * 4 in cache)
    assert bytes([2]) * 4 not in cache  # only the next one
    loads = len(source.loads)
    assert content.read(1000, 1000) == data[1000:2000]  # served from the cache
    _wait_for(lambda: bytes([2]) * 4 in cache)
    assert len(source.loads) == loads + 1  # and that read fetched blob 2 ahead
    cache.close()


def test_a_failed_load_is_not_cached() -> None:
    content, cache, source, data = _content(n=2, size=100, capacity=1 << 20)
    source.failing.add(bytes([0]) * 4)
    with pytest.raises(NotFound):
        content.read(0, 10)
    source.failing.clear()
    assert content.read(0, 10) == data[:10]
    cache.close()


def test_a_blob_larger_than_the_cache_is_served_but_not_kept() -> None:
    content, cache, _, data = _content(n=1, size=5000, capacity=4000)
    assert content.read(4990, 100) == data[4990:]
    assert cache.cached_bytes == 0
    cache.close()


def test_concurrent_readers_share_one_load() -> None:
    release = threading.Event()
    loads: list[bytes] = []

    def slow(blob_id: bytes) -> bytes:
        loads.append(blob_id)
        release.wait(5)
        return b"x" * 10

    cache = BlobCache(slow, 1000)
    results: list[bytes] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(b"id"))) for _ in range(4)]
    for t in threads:
        t.start()
    _wait_for(lambda: len(loads) == 1)
    release.set()
    for t in threads:
        t.join(5)
    assert results == [b"x" * 10] * 4 and loads == [b"id"]
    cache.close()


def test_length_mismatch_is_an_error() -> None:
    cache = BlobCache(lambda _: b"short", 1000)
    content = FileContent([b"id"], [10], cache)
    with pytest.raises(Exception, match="unexpected length"):
        content.read(0, 10)
    cache.close()

