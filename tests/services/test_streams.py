"""backup_streams: named streams beside a job's paths in one snapshot, all or nothing."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO

import pytest

from amber.errors import DatabaseError, UsageError
from amber.repository import Repository
from amber.services import browse
from amber.services.backup import BackupRequest
from amber.services.streams import NamedStream, backup_streams


def data(content: bytes) -> Callable[[], AbstractContextManager[IO[bytes]]]:
    @contextmanager
    def opener() -> Iterator[IO[bytes]]:
        yield io.BytesIO(content)

    return opener


@contextmanager
def failing() -> Iterator[IO[bytes]]:
    yield io.BytesIO(b"half a dump")
    raise DatabaseError("pg_dump exited 1")


def test_streams_and_paths_share_one_snapshot(repo: Repository, tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_bytes(b"alpha")
    streams = [
        NamedStream("/databases/postgresql/shop.pgdump", data(b"PGDMP" + os.urandom(200_000))),
        NamedStream("/databases/sqlite/app.sqlite", data(b"SQLite format 3\0")),
        NamedStream("/databases/postgresql/crm.pgdump", data(b"")),
    ]
    outcome = backup_streams(repo, BackupRequest(paths=[str(tmp_path / "docs")]), streams)
    assert sorted(outcome.snapshot.paths) == sorted([str(tmp_path / "docs"), "/databases"])
    files = {os.fsdecode(p): n.size for p, n in browse.ls(repo, outcome.snapshot_id, "/") if n.type == "file"}
    assert files == {
        str(tmp_path / "docs" / "a.txt"): 5,
        "/databases/postgresql/shop.pgdump": 200_005,
        "/databases/postgresql/crm.pgdump": 0,
        "/databases/sqlite/app.sqlite": 16,
    }
    out = io.BytesIO()
    browse.dump(repo, outcome.snapshot_id, "/databases/sqlite/app.sqlite", out)
    assert out.getvalue() == b"SQLite format 3\0"
    assert outcome.snapshot.summary.total_files == 4


def test_a_failing_stream_writes_no_snapshot(repo: Repository) -> None:
    streams = [NamedStream("/databases/sqlite/a.sqlite", data(b"ok")),
               NamedStream("/databases/postgresql/b.pgdump", failing)]  # fmt: skip
    with pytest.raises(DatabaseError):
        backup_streams(repo, BackupRequest(), streams)
    assert repo.snapshot_names() == []


@pytest.mark.parametrize("paths", [["/databases"], ["/databases/x"], ["/databases/../databases/y"]])
def test_a_backup_path_where_the_dumps_go_is_refused(repo: Repository, paths: list[str]) -> None:
    with pytest.raises(UsageError, match="where the dumps are stored"):
        stream = NamedStream("/databases/sqlite/a.sqlite", data(b"x"))
        backup_streams(repo, BackupRequest(paths=paths), [stream])
    assert repo.snapshot_names() == []


@pytest.mark.parametrize("path", ["/x.sqlite", "/databases/../x", "/databases//a", "/databases/./a"])
def test_stream_paths_must_be_below_a_top_directory(repo: Repository, path: str) -> None:
    with pytest.raises(UsageError):
        backup_streams(repo, BackupRequest(), [NamedStream(path, data(b"x"))])


def dump_blobs(repo: Repository, snapshot_id: str) -> list[bytes]:
    [node] = [n for p, n in browse.ls(repo, snapshot_id, "/") if p == b"/databases/postgresql/shop.pgdump"]
    return list(node.content)


def test_the_next_run_reads_only_changed_files_and_dedups_the_dump(repo: Repository, tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_bytes(os.urandom(100_000))
    # Chunk boundaries depend on the content and the repository's chunker seed, and a
    # chunk may be up to chunk_max long: a dump of more than twice that always has a
    # last chunk shorter than its half, whatever the random bytes.
    dump = os.urandom(2 * repo.config.chunk_max + 4096)
    req = BackupRequest(paths=[str(tmp_path / "docs")])
    first = backup_streams(repo, req, [NamedStream("/databases/postgresql/shop.pgdump", data(dump))])
    second = backup_streams(repo, req, [NamedStream("/databases/postgresql/shop.pgdump", data(dump + b"x"))])
    assert second.snapshot.parent == first.snapshot_id  # same paths (with /databases): the parent is found
    assert second.snapshot.summary.files_unmodified == 1  # a.txt was not read again
    assert second.snapshot.summary.data_blobs_added == 1  # only the dump's last chunk is new
    old, new = dump_blobs(repo, first.snapshot_id), dump_blobs(repo, second.snapshot_id)
    assert len(old) >= 2 and new[: len(old) - 1] == old[:-1] and len(set(new) - set(old)) == 1
    assert second.snapshot.summary.data_added < len(dump) // 2
