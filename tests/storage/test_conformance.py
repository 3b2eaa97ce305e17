"""Conformance suite for the storage Protocol (``amber.storage.base.Backend``).

Every backend must pass these. To add one, append a factory to
``BACKEND_FACTORIES``: it gets a fresh temporary directory and the pytest request
(to reach server fixtures, see servers.py) and returns an *uncreated* backend for
an empty location; called twice in one test it must open the same location.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from amber.errors import AmberError, ObjectNotFound, ObjectTooLarge, StorageError
from amber.storage import Backend, FileInfo, FileType, Handle, open_backend
from amber.storage.local import LocalBackend
from amber.storage.url import BackendOptions
from tests.storage.servers import RestServer, S3Server, SshServer, rclone_env

BackendFactory = Callable[[Path, pytest.FixtureRequest], Backend]


def _sftp(tmp: Path, request: pytest.FixtureRequest) -> Backend:
    from amber.storage.sftp import SftpBackend

    server: SshServer = request.getfixturevalue("sshd_server")
    return SftpBackend(server.alias, str(tmp / "repo"), ssh_config=str(server.ssh_config), connections=3)


def _s3(tmp: Path, request: pytest.FixtureRequest) -> Backend:
    from amber.storage.s3 import S3Backend

    server: S3Server = request.getfixturevalue("s3_server")
    bucket = request.getfixturevalue("s3_bucket")
    return S3Backend(server.endpoint, bucket, f"{tmp.name}/repo", server.settings())


def _rest(tmp: Path, request: pytest.FixtureRequest) -> Backend:
    from amber.storage.rest import RestBackend

    server: RestServer = request.getfixturevalue("rest_server")
    return RestBackend(f"{server.url}{tmp.name}/")


def _rclone(tmp: Path, request: pytest.FixtureRequest) -> Backend:
    from amber.storage.rclone import RcloneBackend

    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    for key, value in rclone_env(tmp).items():
        monkeypatch.setenv(key, value)
    return RcloneBackend(f"amberlocal:{tmp / 'repo'}")


def _wrapped(tmp: Path, request: pytest.FixtureRequest) -> Backend:
    """The whole wrapper stack (retry, rate limit, connection limit) over a local directory."""
    opts = BackendOptions(limit_upload_kib=1 << 20, limit_download_kib=1 << 20, extra={"connections": "4"})
    return open_backend(str(tmp / "repo"), opts)


BACKEND_FACTORIES: list[tuple[str, BackendFactory]] = [
    ("local", lambda tmp, request: open_backend(str(tmp / "repo"))),
    ("local-wrapped", _wrapped),
    ("sftp", _sftp),
    ("s3", _s3),
    ("rest", _rest),
    ("rclone", _rclone),
]

NAMED_TYPES = [t for t in FileType if t is not FileType.CONFIG]


def _name(n: int) -> str:
    return f"{n:064x}"


@pytest.fixture(params=[f for _, f in BACKEND_FACTORIES], ids=[i for i, _ in BACKEND_FACTORIES])
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Backend]]:
    made: list[Backend] = []

    def make() -> Backend:
        b = request.param(tmp_path, request)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


@pytest.fixture
def backend(factory: Callable[[], Backend]) -> Backend:
    b = factory()
    b.create()
    return b


def test_satisfies_protocol(backend: Backend) -> None:
    assert isinstance(backend, Backend)
    assert isinstance(backend.location, str) and backend.location


def test_exists_only_after_create_and_config(factory: Callable[[], Backend]) -> None:
    b = factory()
    assert not b.exists()
    b.create()
    assert not b.exists()
    b.create()  # idempotent
    b.save(Handle(FileType.KEY, _name(1)), b"key")
    assert not b.exists()
    b.save(Handle(FileType.CONFIG), b"config")
    assert b.exists()
    assert b.load(Handle(FileType.CONFIG)) == b"config"
    # a second handle on the same location sees the same repository
    assert factory().exists()


def test_list_before_create_is_empty(factory: Callable[[], Backend]) -> None:
    b = factory()
    for t in FileType:
        with contextlib.suppress(ObjectNotFound):  # also acceptable: no such location
            assert list(b.list(t)) == []


@pytest.mark.parametrize("type_", NAMED_TYPES, ids=lambda t: t.name)
def test_save_load_round_trip(backend: Backend, type_: FileType) -> None:
    payloads = {
        _name(1): b"",
        _name(2): b"x",
        _name(3): bytes(range(256)) * 4096,  # 1 MiB, every byte value
        "ab" + "cd" * 31: os.urandom(100_000),
    }
    for name, data in payloads.items():
        backend.save(Handle(type_, name), data)
    for name, data in payloads.items():
        assert backend.load(Handle(type_, name)) == data
        assert backend.stat(Handle(type_, name)) == FileInfo(name, len(data))


def test_save_accepts_bytearray_and_memoryview(backend: Backend) -> None:
    backend.save(Handle(FileType.PACK, _name(1)), bytearray(b"from bytearray"))
    backend.save(Handle(FileType.PACK, _name(2)), memoryview(b"from memoryview"))  # type: ignore[arg-type]
    assert backend.load(Handle(FileType.PACK, _name(1))) == b"from bytearray"
    assert backend.load(Handle(FileType.PACK, _name(2))) == b"from memoryview"


@pytest.mark.parametrize("type_", [FileType.PACK, FileType.INDEX], ids=lambda t: t.name)
def test_load_range(backend: Backend, type_: FileType) -> None:
    data = bytes(range(256)) * 40
    h = Handle(type_, _name(7))
    backend.save(h, data)
    assert backend.load(h, 0) == data
    assert backend.load(h, 0, None) == data
    assert backend.load(h, 10) == data[10:]
    assert backend.load(h, 10, 20) == data[10:30]
    assert backend.load(h, 0, 1) == data[:1]
    assert backend.load(h, len(data) - 3, 3) == data[-3:]
    assert backend.load(h, 100, 0) == b""
    # a range running past the end is cut short, not padded
    assert backend.load(h, len(data) - 5, 100) == data[-5:]
    assert backend.load(h, len(data), 10) == b""
    assert backend.load(h, len(data) + 50) == b""


def test_bounded_load(backend: Backend) -> None:
    """``load(limit=)``: the object (or the range asked for) if it fits, else ObjectTooLarge
    naming the object, without returning more than ``limit`` bytes."""
    data = os.urandom(5000)
    h = Handle(FileType.SNAPSHOT, _name(8))
    backend.save(h, data)
    backend.save(Handle(FileType.CONFIG), b"c" * 300)
    backend.save(Handle(FileType.LOCK, _name(9)), b"")
    assert backend.load(h, limit=5000) == data
    assert backend.load(h, limit=1 << 40) == data
    assert backend.load(h, 1000, limit=4000) == data[1000:]
    assert backend.load(h, 0, 100, limit=100) == data[:100]
    assert backend.load(h, 4990, 100, limit=20) == data[4990:]  # what is left fits
    assert backend.load(Handle(FileType.LOCK, _name(9)), limit=0) == b""
    assert backend.load(Handle(FileType.CONFIG), limit=300) == b"c" * 300
    for call in (
        lambda: backend.load(h, limit=4999),
        lambda: backend.load(h, 1000, limit=3999),
        lambda: backend.load(h, 0, 101, limit=100),
    ):
        with pytest.raises(ObjectTooLarge, match=f"snapshots/{_name(8)[:16]}.* over the .* limit") as caught:
            call()
        assert caught.value.exit_code == 14
    with pytest.raises(ObjectTooLarge, match=r"^config "):
        backend.load(Handle(FileType.CONFIG), limit=299)
    with pytest.raises(ObjectNotFound):
        backend.load(Handle(FileType.SNAPSHOT, _name(10)), limit=100)


def test_a_huge_range_is_cut_to_the_object(backend: Backend) -> None:
    """A length read from a damaged index (100 TiB) must not be allocated."""
    h = Handle(FileType.PACK, _name(11))
    backend.save(h, b"0123456789")
    assert backend.load(h, 2, 100 << 40) == b"23456789"


def test_stat_config(backend: Backend) -> None:
    backend.save(Handle(FileType.CONFIG), b"12345")
    assert backend.stat(Handle(FileType.CONFIG)).size == 5


@pytest.mark.parametrize("type_", NAMED_TYPES, ids=lambda t: t.name)
def test_list_names_and_sizes_per_type(backend: Backend, type_: FileType) -> None:
    assert list(backend.list(type_)) == []
    want = {_name(i * 0x1111): b"d" * i for i in range(1, 13)}
    for name, data in want.items():
        backend.save(Handle(type_, name), data)
    # objects of other types never show up
    for other in NAMED_TYPES:
        if other is not type_:
            backend.save(Handle(other, _name(0xFFFF)), b"other")
    listed = list(backend.list(type_))
    assert len(listed) == len(want), "no duplicates"
    assert {fi.name: fi.size for fi in listed} == {n: len(d) for n, d in want.items()}
    assert all(isinstance(fi, FileInfo) for fi in listed)


def test_list_config(backend: Backend) -> None:
    assert list(backend.list(FileType.CONFIG)) == []
    backend.save(Handle(FileType.CONFIG), b"cfg")
    assert [fi.size for fi in backend.list(FileType.CONFIG)] == [3]


@pytest.mark.parametrize("type_", NAMED_TYPES, ids=lambda t: t.name)
def test_remove(backend: Backend, type_: FileType) -> None:
    keep, gone = Handle(type_, _name(1)), Handle(type_, _name(2))
    backend.save(keep, b"keep")
    backend.save(gone, b"gone")
    backend.remove(gone)
    assert [fi.name for fi in backend.list(type_)] == [keep.name]
    with pytest.raises(ObjectNotFound):
        backend.load(gone)
    assert backend.load(keep) == b"keep"
    # a removed name can be written again
    backend.save(gone, b"again")
    assert backend.load(gone) == b"again"


@pytest.mark.parametrize("type_", NAMED_TYPES, ids=lambda t: t.name)
def test_missing_object_raises_object_not_found(backend: Backend, type_: FileType) -> None:
    h = Handle(type_, _name(404))
    with pytest.raises(ObjectNotFound):
        backend.load(h)
    with pytest.raises(ObjectNotFound):
        backend.load(h, 10, 10)
    with pytest.raises(ObjectNotFound):
        backend.stat(h)
    with pytest.raises(ObjectNotFound):
        backend.remove(h)


def test_missing_config_raises_object_not_found(backend: Backend) -> None:
    with pytest.raises(ObjectNotFound):
        backend.load(Handle(FileType.CONFIG))
    with pytest.raises(ObjectNotFound):
        backend.stat(Handle(FileType.CONFIG))


def test_overwrite_replaces_whole_content(backend: Backend) -> None:
    h = Handle(FileType.SNAPSHOT, _name(5))
    backend.save(h, b"a" * 100_000)
    backend.save(h, b"short")
    assert backend.load(h) == b"short"
    assert backend.stat(h).size == 5
    backend.save(h, b"b" * 50_000)
    assert backend.load(h) == b"b" * 50_000
    assert [fi.name for fi in backend.list(FileType.SNAPSHOT)] == [h.name]


@pytest.mark.parametrize("type_", NAMED_TYPES, ids=lambda t: t.name)
def test_save_leaves_no_visible_temporary_files(backend: Backend, type_: FileType) -> None:
    for i in range(20):
        backend.save(Handle(type_, _name(i)), os.urandom(1000 + i))
    backend.save(Handle(FileType.CONFIG), b"cfg")
    names = {fi.name for fi in backend.list(type_)}
    assert names == {_name(i) for i in range(20)}


# rclone serve restic writes files in place on its local (and sftp) remotes, so a reader
# racing an *overwrite* can see a mix. amber never overwrites an object (names are content
# hashes), and rest-server and cloud remotes are atomic; docs/backends.md says so.
IN_PLACE_WRITERS = {"rest", "rclone"}


def test_readers_see_old_or_new_content_never_a_mix(backend: Backend, request: pytest.FixtureRequest) -> None:
    """save is atomic: a concurrent reader sees one whole version."""
    if request.node.callspec.id in IN_PLACE_WRITERS:
        pytest.skip("rclone serve restic over a local directory overwrites in place")
    h = Handle(FileType.INDEX, _name(9))
    versions = [b"A" * 300_000, b"B" * 700_000, b"C" * 10]
    backend.save(h, versions[0])
    stop = threading.Event()
    seen: list[bytes] = []
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            i = 0
            while not stop.is_set():
                i += 1
                backend.save(h, versions[i % len(versions)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=writer)
    t.start()
    try:
        for _ in range(300 if request.node.callspec.id.startswith("local") else 60):
            seen.append(backend.load(h))
            names = [fi.name for fi in backend.list(FileType.INDEX)]
            assert names == [h.name]
    finally:
        stop.set()
        t.join()
    assert not errors
    assert all(s in versions for s in seen)


@pytest.mark.parametrize(
    "name", ["", ".hidden", "..", "../escape", "a/b", "/abs", "nul\0byte", ".tmp-" + _name(1)]
)
def test_invalid_names_are_rejected(backend: Backend, name: str) -> None:
    for type_ in NAMED_TYPES:
        h = Handle(type_, name)
        with pytest.raises(StorageError):
            backend.save(h, b"x")
        with pytest.raises(StorageError):
            backend.load(h)
        with pytest.raises(StorageError):
            backend.stat(h)
        with pytest.raises(StorageError):
            backend.remove(h)
        assert list(backend.list(type_)) == []


def test_errors_are_amber_errors(backend: Backend) -> None:
    """Nothing raw leaks: every failure above is an AmberError subclass."""
    for call in (
        lambda: backend.load(Handle(FileType.PACK, _name(1))),
        lambda: backend.save(Handle(FileType.PACK, "a/b"), b""),
        lambda: backend.remove(Handle(FileType.LOCK, _name(1))),
    ):
        with pytest.raises(AmberError):
            call()


def test_close_is_harmless(factory: Callable[[], Backend]) -> None:
    b = factory()
    b.create()
    b.save(Handle(FileType.KEY, _name(1)), b"k")
    b.close()
    assert factory().load(Handle(FileType.KEY, _name(1))) == b"k"


# -- LocalBackend specifics ---------------------------------------------------------


class TestLocalBackend:
    @pytest.fixture
    def local(self, tmp_path: Path) -> LocalBackend:
        b = LocalBackend(tmp_path / "repo")
        b.create()
        return b

    def test_layout(self, local: LocalBackend) -> None:
        for t in NAMED_TYPES:
            assert (local.root / t.value).is_dir()
        assert len(list((local.root / "data").iterdir())) == 256
        local.save(Handle(FileType.PACK, "ab" + "0" * 62), b"p")
        assert (local.root / "data" / "ab" / ("ab" + "0" * 62)).read_bytes() == b"p"
        local.save(Handle(FileType.CONFIG), b"c")
        assert (local.root / "config").read_bytes() == b"c"

    def test_files_are_private(self, local: LocalBackend) -> None:
        local.save(Handle(FileType.KEY, _name(1)), b"k")
        assert (local.root / "keys" / _name(1)).stat().st_mode & 0o777 == 0o600

    def test_no_temp_files_left_on_disk(self, local: LocalBackend) -> None:
        for t in NAMED_TYPES:
            local.save(Handle(t, _name(3)), b"x" * 5000)
        local.save(Handle(FileType.CONFIG), b"cfg")
        leftovers = [p for p in local.root.rglob(".*")]
        assert leftovers == []

    def test_leftover_temp_files_and_dirs_are_not_listed(self, local: LocalBackend) -> None:
        # what a crash between write and rename leaves behind
        (local.root / "index" / f".tmp-{_name(1)}-deadbeef").write_bytes(b"partial")
        (local.root / "data" / "00" / f".tmp-{_name(0)}-deadbeef").write_bytes(b"partial")
        (local.root / "snapshots" / "subdir").mkdir()
        (local.root / "data" / "stray-file").write_bytes(b"not a fan-out dir")
        assert list(local.list(FileType.INDEX)) == []
        assert list(local.list(FileType.PACK)) == []
        assert list(local.list(FileType.SNAPSHOT)) == []

    def test_failed_save_keeps_old_content_and_cleans_up(
        self, local: LocalBackend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        h = Handle(FileType.SNAPSHOT, _name(1))
        local.save(h, b"old")

        def broken_fsync(fd: int) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(os, "fsync", broken_fsync)
        with pytest.raises(StorageError):
            local.save(h, b"new content")
        monkeypatch.undo()
        assert local.load(h) == b"old"
        assert [p.name for p in (local.root / "snapshots").iterdir()] == [h.name]

    def test_permission_and_disk_errors_map_to_amber_errors(
        self, local: LocalBackend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from amber.errors import DiskFull, PermissionDenied

        real_write = os.write

        def enospc(fd: int, data: object) -> int:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "write", enospc)
        with pytest.raises(DiskFull):
            local.save(Handle(FileType.PACK, _name(1)), b"data")
        monkeypatch.setattr(os, "write", real_write)

        def eacces(*args: object, **kwargs: object) -> int:
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(os, "open", eacces)
        with pytest.raises(PermissionDenied):
            local.save(Handle(FileType.PACK, _name(2)), b"data")
        monkeypatch.undo()
        assert list(local.list(FileType.PACK)) == []

    def test_list_survives_objects_vanishing_midway(
        self, local: LocalBackend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A concurrent remove (lock refresh, prune) must not cut the listing short."""
        for i in range(10):
            local.save(Handle(FileType.LOCK, _name(i)), b"lock")
        order = os.listdir(local.root / "locks")  # the order list() walks them in
        it = local.list(FileType.LOCK)
        first = next(it)
        assert first.name == order[0]
        victim = order[1]
        (local.root / "locks" / victim).unlink()
        rest = {fi.name for fi in it}
        # every other object is still listed (the vanished one may or may not be)
        assert {_name(i) for i in range(10)} - {first.name, victim} <= rest
