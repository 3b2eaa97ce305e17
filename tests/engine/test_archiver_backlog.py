"""The walk waits for slow reads instead of holding the whole tree in memory.

Directories are finished in post-order once their files are read. When the
walk runs ahead of the readers, at most ``dirfinish.BACKLOG_NODES`` entries of
walked directories wait; beyond that the walker blocks on the oldest. Blocking
must not change what is stored.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from amber.engine import dirfinish
from amber.engine.archiver import ArchiveOptions, Archiver
from amber.engine.filereader import ContentReader, FileContent
from amber.engine.progress import NullProgress
from amber.repository import Repository
from amber.services.backup import content_reader


def _make(src: Path) -> None:
    for i in range(40):
        d = src / f"d{i:02}" / "inner"
        d.mkdir(parents=True)
        for j in range(5):
            (d / f"f{j}.txt").write_bytes(b"%d-%d\n" % (i, j) * (j + 1))
    (src / "d00" / "big.bin").write_bytes(os.urandom(300_000))  # read as a stream, first
    for _ in os.walk(src):  # relatime: settle the directories' atimes
        pass


class _SlowFirstRead:
    """Holds the first streamed file until the walk has gone past the backlog bound."""

    def __init__(self, inner: ContentReader) -> None:
        self._inner = inner
        self.release = threading.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def read_file(self, path: bytes, st: os.stat_result) -> FileContent:
        self.release.wait(timeout=0.5)  # the walk cannot release it: it blocks on this read
        return self._inner.read_file(path, st)


def _archive(repo: Repository, src: Path, reader: object) -> bytes:
    archiver = Archiver(repo.blobs, repo, reader, ArchiveOptions(prewarm=False))  # type: ignore[arg-type]
    result = archiver.archive([os.fsencode(src)], None)
    repo.blobs.flush()
    assert result.skipped == [] and result.summary.files_new == 40 * 5 + 1
    tree_id = result.tree
    for part in src.parts[1:]:
        tree_id = next(n.subtree for n in repo.load_tree(tree_id).nodes if n.name == os.fsencode(part))
    return tree_id


@pytest.mark.parametrize("backlog", [1, 7, 10_000])
def test_a_small_backlog_bound_stores_the_same_tree(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backlog: int
) -> None:
    src = tmp_path / "src"
    _make(src)
    expected = _archive(repo, src, content_reader(repo, NullProgress()))
    monkeypatch.setattr(dirfinish, "BACKLOG_NODES", backlog)
    slow = _SlowFirstRead(content_reader(repo, NullProgress()))
    assert _archive(repo, src, slow) == expected
