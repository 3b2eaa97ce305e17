"""Copy jobs in worker processes (local repositories): same result as threads, same order of writes."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from amber.engine.copier import CopyOptions, CopyStats
from amber.repository import Repository, init_repository
from amber.services.check import check
from amber.services.copy import _worker_processes, copy_snapshots
from amber.storage import FileType, open_backend
from amber.storage.url import BackendOptions
from tests.engine.test_copier import FAST_KDF, PW, backup, files_of, make_tree, new_repo, open_repo, restored
from tests.engine.test_copier_same_ids import flip_byte_in_biggest_pack

PROCESSES = CopyOptions(workers=2, processes=True)


@pytest.fixture
def three(tmp_path: Path) -> Iterator[tuple[Repository, Path]]:
    a = new_repo(tmp_path / "a")
    for name in ("b", "c"):
        init_repository(open_backend(str(tmp_path / name)), PW, FAST_KDF).close()
    yield a, make_tree(tmp_path / "src")
    a.close()


def blob_count(repo: Repository) -> int:
    return sum(1 for _ in repo.blobs.index.blobs())


def test_processes_copy_like_threads(three: tuple[Repository, Path], tmp_path: Path) -> None:
    a, src = three
    sid = backup(a, src)
    threaded = copy_snapshots(a, open_repo(tmp_path / "b"), options=CopyOptions(workers=2, processes=False))
    b = open_repo(tmp_path / "c")
    result = copy_snapshots(a, b, options=PROCESSES)
    assert [s for s, _ in result.copied] == [sid] and not result.failed
    for field in ("blobs_read", "blobs_added", "bytes_read", "bytes_added", "trees", "trees_added"):
        assert getattr(result.stats, field) == getattr(threaded.stats, field), field
    assert b.blobs.index.packs() == {fi.name for fi in b.backend.list(FileType.PACK)}  # rows merged here
    c = open_repo(tmp_path / "c")
    assert restored(c, result.copied[0][1], tmp_path / "out", src) == files_of(src)
    report = check(c, read_data=True)
    assert report.ok and not report.warnings, (report.errors, report.warnings)


def test_second_snapshot_reuses_what_workers_stored(three: tuple[Repository, Path], tmp_path: Path) -> None:
    a, src = three
    backup(a, src)
    shutil.copytree(src, tmp_path / "elsewhere", symlinks=True)
    backup(a, tmp_path / "elsewhere")  # same data, other paths: no reference snapshot
    c = open_repo(tmp_path / "c")
    result = copy_snapshots(a, c, options=PROCESSES)  # one run, two snapshots, the same workers
    assert len(result.copied) == 2
    assert result.stats.blobs_added == blob_count(a) - sum(1 for _, loc in a.blobs.index.blobs()
                                                           if loc.type.name == "TREE")  # fmt: skip
    c = open_repo(tmp_path / "c")
    assert check(c, read_data=True).ok


def test_shared_ids_with_processes(tmp_path: Path) -> None:
    a = new_repo(tmp_path / "a")
    init_repository(open_backend(str(tmp_path / "b")), PW, FAST_KDF, ids_from=a).close()
    src = make_tree(tmp_path / "src")
    sid = backup(a, src)
    result = copy_snapshots(a, open_repo(tmp_path / "b"), options=PROCESSES)
    b = open_repo(tmp_path / "b")
    assert b.load_snapshot(result.copied[0][1]).tree == a.load_snapshot(sid).tree
    assert restored(b, result.copied[0][1], tmp_path / "out", src) == files_of(src)
    assert check(b, read_data=True).ok


def test_damaged_source_in_a_worker_writes_no_snapshot(three: tuple[Repository, Path],
                                                       tmp_path: Path) -> None:  # fmt: skip
    a, src = three
    backup(a, src)
    flip_byte_in_biggest_pack(a, tmp_path / "a", 200)
    result = copy_snapshots(open_repo(tmp_path / "a"), open_repo(tmp_path / "c"), options=PROCESSES)
    assert result.copied == [] and len(result.failed) == 1 and "damaged" in result.failed[0][1]
    c = open_repo(tmp_path / "c")
    assert c.snapshot_names() == []
    assert check(c, read_data=True).ok


def test_when_processes_are_used(three: tuple[Repository, Path], tmp_path: Path) -> None:
    a, src = three
    backup(a, src)
    b = open_repo(tmp_path / "b")
    stats = CopyStats()
    assert _worker_processes(a, b, False, CopyOptions(), stats, None) is None  # small: not worth it
    forced = _worker_processes(a, b, False, PROCESSES, stats, None)
    assert forced is not None
    forced.close()
    assert _worker_processes(a, b, False, CopyOptions(processes=False), stats, None) is None
    limited = Repository(
        open_backend(str(tmp_path / "b"), BackendOptions(limit_upload_kib=100)), b.key, b.config, b.key_name
    )
    assert _worker_processes(a, limited, False, PROCESSES, stats, None) is None  # every request limited here


def test_large_jobs_and_replies_do_not_block_each_other(three: tuple[Repository, Path],
                                                        tmp_path: Path) -> None:  # fmt: skip
    """Job messages and replies larger than a socket buffer, several in flight: sending
    a job must not hold what the reader needs to take the worker's reply."""
    a, src = three
    backup(a, src)
    c = open_repo(tmp_path / "c")
    data = [(i, loc) for i, loc in a.blobs.index.blobs() if loc.type.name == "DATA"]
    blob_id, loc = min(data, key=lambda item: item[1].length)  # many copies of a tiny blob: quick jobs
    runner = _worker_processes(a, c, False, CopyOptions(workers=1, processes=True), CopyStats(), None)
    assert runner is not None
    results: list[int] = []

    def submit_all() -> None:
        futures = [runner.submit(lambda: [], loc.pack, [(blob_id, loc)] * 3_000) for _ in range(200)]
        results.extend(len(f.result()) for f in futures)

    worker = threading.Thread(target=submit_all, daemon=True)
    worker.start()
    worker.join(timeout=60)
    runner.close(abort=worker.is_alive())  # a deadlock must fail the test, not hang it
    assert not worker.is_alive(), "sending jobs and taking replies deadlocked"
    assert results == [3_000] * 200
