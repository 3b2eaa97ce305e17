"""A repository kept open across operations catches up with what others wrote (repository/kept.py)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

from amber.repository import KdfParams, Repository, init_repository, open_repository
from amber.repository.kept import catch_up, opens_as_before
from amber.repository.pack import BlobType, PackedBlob
from amber.storage import open_backend
from amber.storage.base import FileType, Handle
from tests.conftest import PASSWORD


def _rows(n: int) -> list[PackedBlob]:
    return [PackedBlob(BlobType.DATA, os.urandom(32), 100 * i, 100, 0) for i in range(n)]


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    """An opened repository (a cheap key derivation: each test opens it twice)."""
    init_repository(open_backend(str(tmp_path / "repo")), PASSWORD.encode(), KdfParams(1, 1024, 1)).close()
    opened = open_repository(open_backend(str(tmp_path / "repo")), PASSWORD.encode())
    yield opened
    opened.close()


@pytest.fixture
def other(repo: Repository) -> Iterator[Repository]:
    """Another process's opening of the same repository."""
    opened = open_repository(open_backend(repo.backend.location), PASSWORD.encode())
    yield opened
    opened.close()


def test_index_files_written_since_are_added_without_a_reload(repo: Repository, other: Repository) -> None:
    mine, theirs = _rows(2), _rows(3)
    repo.blobs.save_index_file({"p1": mine})
    other.blobs.save_index_file({"p2": theirs})
    index_before = repo.blobs.index
    assert repo.blobs.catch_up()
    assert repo.blobs.index is index_before  # added to, not replaced
    assert all(b.id in repo.blobs.index for b in mine + theirs)
    assert repo.blobs.catch_up()  # nothing new: nothing to do


Change = Callable[[Repository, Repository, str], None]


def _removed(repo: Repository, other: Repository, loaded: str) -> None:
    other.backend.remove(Handle(FileType.INDEX, loaded))  # a prune rewrote it


def _superseded(repo: Repository, other: Repository, loaded: str) -> None:
    other.blobs.save_index_file({"p1": []}, [loaded])  # a prune that has not removed it yet


def _unreadable(repo: Repository, other: Repository, loaded: str) -> None:
    other.backend.save(Handle(FileType.INDEX, "ab" * 32), b"not an index")


@pytest.mark.parametrize("change", [_removed, _superseded, _unreadable])
def test_a_loaded_file_gone_or_a_new_one_that_replaces_or_fails_asks_for_a_reload(
    repo: Repository, other: Repository, change: Change
) -> None:
    rows = _rows(2)
    loaded = repo.blobs.save_index_file({"p1": rows})
    change(repo, other, loaded)
    assert not repo.blobs.catch_up()
    catch_up(repo)  # reloads
    assert (loaded in repo.blobs.index_files) == (change is not _removed)
    if change is _removed:
        assert not any(b.id in repo.blobs.index for b in rows)
    if change is _unreadable:
        assert repo.index_errors == ["ab" * 32]


def test_opens_as_before_until_its_key_goes_or_the_config_changes(
    repo: Repository, other: Repository
) -> None:
    assert opens_as_before(repo)
    other.save_config(msgspec.structs.replace(other.config, compression_level=9))
    assert not opens_as_before(repo)
    fresh = open_repository(open_backend(repo.backend.location), PASSWORD.encode())
    try:
        assert opens_as_before(fresh)
        fresh.add_key(b"second password", KdfParams(1, 1024, 1))
        other.backend.remove(Handle(FileType.KEY, fresh.key_name))
        assert not opens_as_before(fresh)
    finally:
        fresh.close()
