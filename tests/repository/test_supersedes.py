"""Index files that name others in ``supersedes`` hide them from readers (design §8)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from amber.engine import repairer
from amber.repository import Repository
from amber.repository.index import decode_index
from amber.repository.pack import BlobType, PackedBlob
from amber.repository.sealing import Kind
from amber.storage.base import FileType, Handle


def _rows(n: int) -> list[PackedBlob]:
    return [PackedBlob(BlobType.DATA, os.urandom(32), 100 * i, 100, 0) for i in range(n)]


def _supersedes(repo: Repository, name: str) -> list[str]:
    raw = repo.backend.load(Handle(FileType.INDEX, name))
    return decode_index(repo.sealer.open(Kind.INDEX, raw)).supersedes


def test_a_superseded_file_is_ignored_while_its_replacement_exists(repo: Repository) -> None:
    blobs = repo.blobs
    old_rows, new_rows = _rows(3), _rows(2)
    old = blobs.save_index_file({"p1": old_rows, "p2": _rows(1)})
    new = blobs.save_index_file({"p1": new_rows}, blobs.superseding([old]))
    repo.load_index()
    assert blobs.ignored_index_files == {old}
    assert set(blobs.index_files) == {new}
    assert all(b.id in blobs.index for b in new_rows) and not any(b.id in blobs.index for b in old_rows)
    repo.backend.remove(Handle(FileType.INDEX, new))  # without its replacement, the old file counts again
    repo.load_index()
    assert set(blobs.index_files) == {old} and not blobs.ignored_index_files


def test_names_are_carried_forward_so_an_older_file_stays_ignored(repo: Repository) -> None:
    blobs = repo.blobs
    first = blobs.save_index_file({"p1": _rows(1)})
    raw_first = repo.backend.load(Handle(FileType.INDEX, first))
    second = blobs.save_index_file({"p1": _rows(1)}, blobs.superseding([first]))
    blobs.remove_index_file(first)
    third = blobs.save_index_file({"p1": _rows(1)}, blobs.superseding([second]))
    blobs.remove_index_file(second)
    assert _supersedes(repo, third) == [second, first]
    repo.backend.save(Handle(FileType.INDEX, first), raw_first)  # the oldest one put back
    repo.load_index()
    assert set(blobs.index_files) == {third} and blobs.ignored_index_files == {first}


def test_repair_index_names_the_old_files_only_in_its_last_file(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between two new files must not hide the old ones: the first new files carry no
    ``supersedes``, so until the last is written, readers still load the old files."""
    for i in range(3):
        repo.blobs.save(BlobType.DATA, os.urandom(1000 + i))
        repo.blobs.flush()
    old = {fi.name for fi in repo.backend.list(FileType.INDEX)}
    repo.load_index()
    monkeypatch.setattr(repairer, "_ROWS_PER_FILE", 1)
    repairer.rebuild_index(repo)
    new = {fi.name for fi in repo.backend.list(FileType.INDEX)}
    assert len(new) == 4 and not new & old  # one per pack, then the one that names the old files
    named = {name: _supersedes(repo, name) for name in new}
    assert sorted(len(s) for s in named.values()) == [0, 0, 0, 3]
    assert set(max(named.values(), key=len)) == old


def test_format_1_supersedes_is_not_followed(tmp_path: Path) -> None:
    """Format 1 named the replaced files in every file of a replacement: after a crash between
    two of them, following it would hide packs that only the unwritten file would have listed."""
    from amber.repository import init_repository, open_repository
    from amber.storage import open_backend
    from tests.conftest import PASSWORD

    init_repository(open_backend(str(tmp_path / "r")), PASSWORD.encode(), version=1).close()
    repo = open_repository(open_backend(str(tmp_path / "r")), PASSWORD.encode())
    kept = _rows(2)
    old = repo.blobs.save_index_file({"p1": _rows(1), "p2": kept})
    repo.blobs.save_index_file({"p1": _rows(1)}, [old])  # the first of two new files; p2 never got one
    repo.load_index()
    assert old in repo.blobs.index_files and not repo.blobs.ignored_index_files
    assert all(b.id in repo.blobs.index for b in kept)
    repo.close()


@pytest.mark.parametrize(
    ("replaced", "lists", "expected"),
    [
        (["a"], {}, ["a"]),
        (["a", "b"], {"a": ["x"], "b": ["y", "x"]}, ["a", "b", "x", "y"]),
        (["a", "a"], {"a": ["a"]}, ["a"]),  # no repeats
        ([], {"a": ["x"]}, []),
        (["a"], {"a": [f"n{i}" for i in range(2000)]}, ["a", *[f"n{i}" for i in range(999)]]),  # bounded
    ],
)
def test_carried_supersedes(replaced: list[str], lists: dict[str, list[str]], expected: list[str]) -> None:
    from amber.repository.indexfiles import MAX_SUPERSEDES, carried_supersedes

    out = carried_supersedes(replaced, lists)
    assert out == expected and len(out) <= MAX_SUPERSEDES
