"""Restore in many batches: the walk collects the next batch while the previous one is written."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from amber.engine import restorer
from amber.errors import Interrupted
from amber.repository import Repository
from amber.services.backup import BackupRequest, backup_paths
from amber.services.restore import RestoreRequest, restore


def tree(src: Path) -> dict[str, bytes]:
    """Small and multi-blob files in nested directories, hard links spread over batches."""
    rng = random.Random(3)
    files: dict[str, bytes] = {}
    for d in range(6):
        (src / f"d{d}" / "sub").mkdir(parents=True)
        for i in range(7):
            rel = f"d{d}/sub/f{i}" if i % 2 else f"d{d}/f{i}"
            data = rng.randbytes(rng.choice([0, 100, 5000, 3 << 20]))
            (src / rel).write_bytes(data)
            files[rel] = data
    os.link(src / "d0" / "f0", src / "d5" / "late-link")
    files["d5/late-link"] = files["d0/f0"]
    return files


def test_many_batches_restore_everything(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(restorer, "_BATCH_FILES", 3)  # 42 files: 14 batches, one in flight at a time
    src = tmp_path / "src"
    src.mkdir()
    files = tree(src)
    backup_paths(repo, BackupRequest(paths=[str(src)]))
    target = tmp_path / "t"
    result = restore(repo, RestoreRequest("latest:" + str(src), str(target), verify=True))
    assert not result.errors and result.files == len(files)
    assert {rel: (target / rel).read_bytes() for rel in files} == files
    assert (target / "d5" / "late-link").stat().st_ino == (target / "d0" / "f0").stat().st_ino


def test_a_cancel_during_the_walk_waits_for_the_batch_in_flight(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(restorer, "_BATCH_FILES", 3)
    src = tmp_path / "src"
    src.mkdir()
    tree(src)
    backup_paths(repo, BackupRequest(paths=[str(src)]))
    entries = 0
    real = restorer.Restorer._entry

    def cancel_later(self: restorer.Restorer, w: object, rel: bytes, node: object) -> bool:
        nonlocal entries
        entries += 1
        if entries == 30:
            raise Interrupted("stop")
        return real(self, w, rel, node)  # type: ignore[arg-type]

    monkeypatch.setattr(restorer.Restorer, "_entry", cancel_later)
    with pytest.raises(Interrupted):
        restore(repo, RestoreRequest("latest:" + str(src), str(target := tmp_path / "t")))
    monkeypatch.setattr(restorer.Restorer, "_entry", real)
    again = restore(repo, RestoreRequest("latest:" + str(src), str(target)))  # no worker still writes
    assert not again.errors


def test_the_walk_runs_with_rarer_gc_passes_and_puts_the_thresholds_back(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    src = tmp_path / "src"
    src.mkdir()
    files = tree(src)
    backup_paths(repo, BackupRequest(paths=[str(src)]))
    before = gc.get_threshold()
    seen: list[int] = []
    real = restorer.Restorer._entry

    def probe(self: restorer.Restorer, w: object, rel: bytes, node: object) -> bool:
        seen.append(gc.get_threshold()[0])
        return real(self, w, rel, node)  # type: ignore[arg-type]

    monkeypatch.setattr(restorer.Restorer, "_entry", probe)
    result = restore(repo, RestoreRequest("latest:" + str(src), str(tmp_path / "t")))
    assert result.files == len(files) and seen and min(seen) >= 20_000 > before[0]
    assert gc.get_threshold() == before
