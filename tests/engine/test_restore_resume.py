"""Restore resume: files already in the target are checked blob by blob; only what differs is written."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

from amber.repository import Repository
from amber.services.backup import BackupRequest, backup_paths
from amber.services.restore import RestoreRequest, restore

MiB = 1 << 20


def _blob_bounds(repo: Repository, src: Path, name: str) -> list[tuple[int, int]]:
    """(offset, end) of each blob of the backed-up file ``name``."""
    snap = repo.load_snapshot(repo.snapshot_names()[0])
    tree = repo.load_tree(snap.tree)
    for part in str(src / name).strip("/").split("/"):
        node = next(n for n in tree.nodes if n.name == part.encode())
        if node.subtree:
            tree = repo.load_tree(node.subtree)
    bounds, offset = [], 0
    for blob_id in node.content:
        n = repo.blobs.locate(blob_id).plain_length
        bounds.append((offset, offset + n))
        offset += n
    return bounds


def test_an_interrupted_restore_rewrites_only_damaged_blobs(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    rng = random.Random(7)
    for name in ("damaged.bin", "truncated.bin", "grown.bin", "intact.bin"):
        (src / name).write_bytes(rng.randbytes(12 * MiB))
    (src / "sparse.bin").write_bytes(bytes(6 * MiB) + b"tail")
    backup_paths(repo, BackupRequest(paths=[str(src)]))
    target = tmp_path / "t"
    req = RestoreRequest("latest:" + str(src), str(target))
    first = restore(repo, req)
    assert not first.errors and first.blobs_skipped == 0
    total_blobs = first.blobs_written

    damaged = _blob_bounds(repo, src, "damaged.bin")
    assert len(damaged) >= 4, "the test needs files of several blobs"
    hit = damaged[len(damaged) // 2]
    with open(target / "damaged.bin", "r+b") as f:  # a few bytes in the middle of one blob
        f.seek(hit[0] + 1000)
        f.write(b"\xff\x00\xff")
    truncated = _blob_bounds(repo, src, "truncated.bin")
    cut = truncated[2][0] + 10  # inside the third blob
    os.truncate(target / "truncated.bin", cut)
    with open(target / "grown.bin", "ab") as f:  # longer than it should be: truncated, nothing rewritten
        f.write(b"extra")
    inode = (target / "intact.bin").stat().st_ino

    second = restore(repo, req)
    assert not second.errors
    rewritten = 1 + (len(truncated) - 2)
    assert second.blobs_written == rewritten
    assert second.blobs_skipped == total_blobs - rewritten
    assert second.bytes_written == (hit[1] - hit[0]) + (truncated[-1][1] - truncated[2][0])
    for name in ("damaged.bin", "truncated.bin", "grown.bin", "intact.bin", "sparse.bin"):
        assert (
            hashlib.sha256((target / name).read_bytes()).digest()
            == hashlib.sha256((src / name).read_bytes()).digest()
        ), name
        assert (target / name).stat().st_mtime_ns == (src / name).stat().st_mtime_ns, name
    assert (target / "intact.bin").stat().st_ino == inode  # resumed in place, not replaced

    third = restore(repo, req)
    assert third.blobs_written == 0 and third.blobs_skipped == total_blobs and third.files == 5


def test_a_zero_range_over_garbage_is_written(repo: Repository, tmp_path: Path) -> None:
    """Zero blocks are left as holes only in new space; over old bytes they are written."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "zeros.bin").write_bytes(b"head" + bytes(3 * MiB) + b"tail")
    backup_paths(repo, BackupRequest(paths=[str(src)]))
    target = tmp_path / "t"
    req = RestoreRequest("latest:" + str(src), str(target))
    restore(repo, req)
    with open(target / "zeros.bin", "r+b") as f:
        f.seek(2 * MiB)
        f.write(b"garbage" * 1000)
    result = restore(repo, req)
    assert not result.errors and result.blobs_written >= 1
    assert (target / "zeros.bin").read_bytes() == (src / "zeros.bin").read_bytes()
