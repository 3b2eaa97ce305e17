"""Append-only mode: the storage wrapper, the repository flag and the per-key flag, on real files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from amber.errors import AppendOnlyViolation, ObjectNotFound
from amber.repository import Snapshot, Tree, init_repository, open_repository
from amber.storage import open_backend
from amber.storage.appendonly import AppendOnlyBackend
from amber.storage.base import FileType, Handle
from amber.storage.local import LocalBackend
from tests.conftest import PASSWORD

APPEND_PW = b"append only password"


@pytest.fixture
def local(tmp_path: Path) -> LocalBackend:
    backend = LocalBackend(tmp_path / "store")
    backend.create()
    return backend


@pytest.mark.parametrize("ftype", [FileType.PACK, FileType.INDEX, FileType.SNAPSHOT, FileType.KEY])
def test_new_objects_are_added_but_never_overwritten_or_removed(local: LocalBackend, ftype: FileType) -> None:
    wrapped = AppendOnlyBackend(local)
    handle = Handle(ftype, "ab" * 32)
    wrapped.save(handle, b"original")
    assert local.load(handle) == b"original"
    with pytest.raises(AppendOnlyViolation, match="overwrite"):
        wrapped.save(handle, b"ransom")
    with pytest.raises(AppendOnlyViolation, match="delete"):
        wrapped.remove(handle)
    with pytest.raises(AppendOnlyViolation, match="delete"):
        wrapped.remove(Handle(ftype, "cd" * 32))  # refused whether or not it exists
    assert local.load(handle) == b"original"
    assert [fi.name for fi in wrapped.list(ftype)] == [handle.name]
    assert wrapped.load(handle, 1, 3) == b"rig" and wrapped.stat(handle).size == 8


def test_config_cannot_be_rewritten(local: LocalBackend) -> None:
    local.save(Handle(FileType.CONFIG), b"config")
    wrapped = AppendOnlyBackend(local)
    with pytest.raises(AppendOnlyViolation):
        wrapped.save(Handle(FileType.CONFIG), b"evil")
    with pytest.raises(AppendOnlyViolation):
        wrapped.remove(Handle(FileType.CONFIG))
    assert local.load(Handle(FileType.CONFIG)) == b"config"


def test_locks_stay_mutable(local: LocalBackend) -> None:
    wrapped = AppendOnlyBackend(local)
    handle = Handle(FileType.LOCK, "11" * 32)
    wrapped.save(handle, b"lease 1")
    wrapped.save(handle, b"lease 2")
    wrapped.remove(handle)
    with pytest.raises(ObjectNotFound):
        local.load(handle)


def test_append_only_repository(repo_path: Path) -> None:
    init_repository(open_backend(str(repo_path)), PASSWORD.encode(), append_only=True).close()
    repo = open_repository(open_backend(str(repo_path)), PASSWORD.encode())
    try:
        assert repo.append_only and repo.config.append_only
        tree_id, _ = repo.save_tree(Tree())
        repo.blobs.flush()  # a pack and an index file: new objects are fine
        snap = Snapshot(time="2024-05-01T10:00:00+00:00", tree=tree_id, paths=["/x"], hostname="h")
        sid = repo.save_snapshot(snap)
        raw = (repo_path / "snapshots" / sid).read_bytes()
        with pytest.raises(AppendOnlyViolation):
            repo.remove_snapshot(sid)
        with pytest.raises(AppendOnlyViolation):
            repo.backend.save(Handle(FileType.SNAPSHOT, sid), b"garbage")
        assert (repo_path / "snapshots" / sid).read_bytes() == raw
        with repo.lock(exclusive=True):  # locks still work (written and removed)
            assert len(list((repo_path / "locks").iterdir())) == 1
        assert not list((repo_path / "locks").iterdir())
        with pytest.raises(AppendOnlyViolation):
            repo.change_password(b"new password")
        assert len(repo.list_keys()) == 1  # refused before adding anything
        added = repo.add_key(b"second")  # adding is allowed, and the new key inherits the mode
        assert {k.id: k.append_only for k in repo.list_keys()}[added] is True
        with pytest.raises(AppendOnlyViolation):
            repo.remove_key(added)
    finally:
        repo.close()


def test_append_only_key_in_a_normal_repository(repo_path: Path) -> None:
    init_repository(open_backend(str(repo_path)), PASSWORD.encode()).close()
    admin = open_repository(open_backend(str(repo_path)), PASSWORD.encode())
    name = admin.add_key(APPEND_PW, append_only=True)
    assert not admin.append_only
    admin.close()

    # the flag is inside the sealed secret; the clear copy is only for display
    doc = json.loads((repo_path / "keys" / name).read_bytes())
    assert doc["append_only"] is True
    del doc["append_only"]
    (repo_path / "keys" / name).write_text(json.dumps(doc, indent=1))

    client = open_repository(open_backend(str(repo_path)), APPEND_PW)
    try:
        assert client.append_only and not client.config.append_only
        keys = {k.id for k in client.list_keys()}
        with pytest.raises(AppendOnlyViolation):
            client.remove_key(next(k for k in keys if k != client.key_name))
        promoted = client.add_key(b"try to escape")  # cannot mint a full key
        assert {k.id: k.append_only for k in client.list_keys()}[promoted] is True
    finally:
        client.close()
    escaped = open_repository(open_backend(str(repo_path)), b"try to escape")
    assert escaped.append_only
    escaped.close()
    full = open_repository(open_backend(str(repo_path)), PASSWORD.encode())
    assert not full.append_only
    full.close()
