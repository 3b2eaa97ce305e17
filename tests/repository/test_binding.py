"""Integrity binding (design §4, format 2): an object opens only as the kind and blob ID it was sealed as."""

from __future__ import annotations

import hashlib
import itertools
import os
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from amber.errors import IntegrityError
from amber.repository import Repository, Snapshot, Tree, init_repository, open_repository
from amber.repository.crypto import MasterKey
from amber.repository.pack import BlobType
from amber.repository.repo import RepoConfig
from amber.repository.sealing import Kind, Sealer
from amber.storage import open_backend
from amber.storage.base import FileType, Handle
from tests.conftest import PASSWORD, AmberCli

KEY = MasterKey(bytes(range(32)), bytes(range(32, 64)))
KINDS = list(Kind)
TIME = "2026-12-03T00:00:00+00:00"


@pytest.mark.parametrize(("sealed_as", "opened_as"), [p for p in itertools.permutations(KINDS, 2)])
def test_an_object_does_not_open_as_another_kind(sealed_as: Kind, opened_as: Kind) -> None:
    sealer = Sealer(KEY)
    sealed = sealer.seal(sealed_as, b"payload", b"n" * 32)
    with pytest.raises(IntegrityError):
        sealer.open(opened_as, sealed, b"n" * 32)
    assert sealer.open(sealed_as, sealed, b"n" * 32) == b"payload"


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32), st.binary(max_size=64))
def test_a_blob_does_not_open_under_another_id(a: bytes, b: bytes, plain: bytes) -> None:
    sealer = Sealer(KEY)
    sealed = sealer.seal(Kind.DATA, plain, a)
    assert sealer.open(Kind.DATA, sealed, a) == plain
    if a != b:
        with pytest.raises(IntegrityError):
            sealer.open(Kind.DATA, sealed, b)


@pytest.mark.parametrize(
    ("writer", "reader", "opens"),
    [
        ((1, False), (1, False), True),
        ((1, False), (2, False), False),  # a format-1 object in a migrated repository: rejected
        ((1, False), (2, True), True),  # while migrating, both formats are read
        ((2, False), (2, True), True),
        ((2, False), (2, False), True),
        ((2, False), (1, False), False),  # format 1 knows no associated data
    ],
)
def test_versions_read_what_they_should(
    writer: tuple[int, bool], reader: tuple[int, bool], opens: bool
) -> None:
    sealed = Sealer(KEY, *writer).seal(Kind.SNAPSHOT, b"s")
    if opens:
        assert Sealer(KEY, *reader).open(Kind.SNAPSHOT, sealed) == b"s"
    else:
        with pytest.raises(IntegrityError):
            Sealer(KEY, *reader).open(Kind.SNAPSHOT, sealed)


def _new_repo(path: Path, version: int) -> Repository:
    init_repository(open_backend(str(path)), PASSWORD.encode(), version=version).close()
    return open_repository(open_backend(str(path)), PASSWORD.encode())


def _plant_blob_as_config(repo: Repository, plaintext: bytes) -> None:
    """Issue 11's attack: store ``plaintext`` as a data blob, cut it from its pack, write it over config."""
    blob_id = repo.key.blob_id(plaintext)
    repo.blobs.set_compression_level(0)  # stored as is: the sealed blob is AEAD(plaintext)
    repo.blobs.save(BlobType.DATA, plaintext, blob_id)
    repo.blobs.flush()
    loc = repo.blobs.locate(blob_id)
    assert loc.raw_length == 0
    sealed = repo.backend.load(Handle(FileType.PACK, loc.pack), loc.offset, loc.length)
    repo.backend.save(Handle(FileType.CONFIG), sealed)


def _evil_config(repo: Repository) -> bytes:
    evil = msgspec.structs.replace(repo.config, id="e" * 32, chunk_avg=4096, chunk_min=1024, chunk_max=8192)
    return msgspec.msgpack.encode(evil)


def test_a_data_blob_written_over_config_is_rejected(tmp_path: Path) -> None:
    repo = _new_repo(tmp_path / "repo", 2)
    assert repo.config.version == 2
    _plant_blob_as_config(repo, _evil_config(repo))
    repo.close()
    with pytest.raises(IntegrityError):
        open_repository(open_backend(str(tmp_path / "repo")), PASSWORD.encode())


def test_format_1_accepted_the_same_attack(tmp_path: Path) -> None:
    """Why format 2 exists: a version-1 repository opens with the planted config."""
    repo = _new_repo(tmp_path / "repo", 1)
    _plant_blob_as_config(repo, _evil_config(repo))
    repo.close()
    reopened = open_repository(open_backend(str(tmp_path / "repo")), PASSWORD.encode())
    assert reopened.config.id == "e" * 32
    reopened.close()


def test_objects_moved_to_another_kind_are_rejected(tmp_path: Path) -> None:
    repo = _new_repo(tmp_path / "repo", 2)
    tree_id, _ = repo.save_tree(Tree())
    repo.blobs.flush()
    sid = repo.save_snapshot(Snapshot(time=TIME, tree=tree_id, paths=["/x"], hostname="h"))
    raw = repo.backend.load(Handle(FileType.SNAPSHOT, sid))
    # the snapshot as an index file (its name is right: it is the SHA-256 of the bytes)
    repo.backend.save(Handle(FileType.INDEX, sid), raw)
    repo.load_index()
    assert repo.index_errors == [sid]
    # an index file as a snapshot
    [index_name] = [fi.name for fi in repo.backend.list(FileType.INDEX) if fi.name != sid]
    index_raw = repo.backend.load(Handle(FileType.INDEX, index_name))
    repo.backend.save(Handle(FileType.SNAPSHOT, index_name), index_raw)
    with pytest.raises(IntegrityError):
        repo.load_snapshot(index_name)
    assert repo.load_snapshot(sid).tree == tree_id
    repo.close()


def test_a_tree_blob_indexed_as_data_is_rejected(tmp_path: Path) -> None:
    repo = _new_repo(tmp_path / "repo", 2)
    tree_id, _ = repo.save_tree(Tree())
    repo.blobs.flush()
    loc = repo.blobs.locate(tree_id)
    sealed = repo.backend.load(Handle(FileType.PACK, loc.pack), loc.offset, loc.length)
    assert repo.blobs.decode_blob(tree_id, sealed, loc.raw_length, BlobType.TREE)
    with pytest.raises(IntegrityError):
        repo.blobs.decode_blob(tree_id, sealed, loc.raw_length, BlobType.DATA)
    repo.close()


def test_a_config_claiming_another_version_is_rejected(tmp_path: Path) -> None:
    """A version-2 config sealed without binding (as format 1 would) is not accepted, nor the reverse."""
    repo = _new_repo(tmp_path / "repo", 2)
    for version, sealer_version in ((2, 1), (1, 2)):
        config = msgspec.structs.replace(repo.config, version=version)
        assert isinstance(config, RepoConfig)
        raw = Sealer(repo.key, sealer_version).seal(Kind.CONFIG, msgspec.msgpack.encode(config))
        repo.backend.save(Handle(FileType.CONFIG), raw)
        with pytest.raises(IntegrityError, match="does not match its format version"):
            open_repository(open_backend(str(tmp_path / "repo")), PASSWORD.encode())
    repo.close()


def test_names_of_content_addressed_objects_are_checked(tmp_path: Path) -> None:
    repo = _new_repo(tmp_path / "repo", 2)
    tree_id, _ = repo.save_tree(Tree())
    repo.blobs.flush()
    sid = repo.save_snapshot(Snapshot(time=TIME, tree=tree_id, paths=["/x"], hostname="h"))
    other = hashlib.sha256(os.urandom(8)).hexdigest()
    repo.backend.save(Handle(FileType.SNAPSHOT, other), repo.backend.load(Handle(FileType.SNAPSHOT, sid)))
    with pytest.raises(IntegrityError, match="does not match its name"):
        repo.load_snapshot(other)
    repo.close()


def test_the_cli_refuses_a_planted_config_with_one_line(cli: AmberCli) -> None:
    repo = open_repository(open_backend(str(cli.repo)), PASSWORD.encode())
    _plant_blob_as_config(repo, _evil_config(repo))
    repo.close()
    result = cli.run("snapshots", check=False)
    assert result.returncode == 14  # IntegrityError
    assert result.stderr.strip().count("\n") == 0 and "config does not authenticate" in result.stderr
