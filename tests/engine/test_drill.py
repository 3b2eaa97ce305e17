"""Drill sampling (pure, seeded) and sample restore with SHA-256 verification on a real repository."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from amber.engine import drill
from amber.engine.drill import SampledFile
from amber.repository import Node, Repository
from amber.services.backup import BackupRequest, backup_paths


def files(*sizes: int) -> list[SampledFile]:
    return [SampledFile(b"/f%d" % i, Node(b"f%d" % i, "file", size=n)) for i, n in enumerate(sizes)]


@pytest.mark.parametrize(
    ("sizes", "count", "percent", "expected_len"),
    [
        ((10, 20, 30, 40), 2, 0, 2),
        ((10, 20, 30, 40), 10, 0, 4),  # never more than there are
        ((10, 20, 30, 40), 0, 100, 4),
        ((100, 1, 1, 1), 0, 0, 0),
        ((0, 0, 5), 3, 0, 1),  # empty files only when nothing else
        ((0, 0), 1, 0, 1),
    ],
)
def test_sample_sizes(sizes: tuple[int, ...], count: int, percent: float, expected_len: int) -> None:
    chosen = drill.sample(files(*sizes), count, percent, seed=1)
    assert len(chosen) == expected_len
    assert len({f.path for f in chosen}) == len(chosen)


@pytest.mark.parametrize("percent", [1, 10, 25, 50, 90])
def test_sample_by_bytes_covers_the_share(percent: float) -> None:
    pool = files(*range(1, 101))
    chosen = drill.sample(pool, 0, percent, seed=3)
    total = sum(f.node.size for f in pool)
    covered = sum(f.node.size for f in chosen)
    assert covered >= total * percent / 100
    assert covered - max(f.node.size for f in chosen) < total * percent / 100  # no more than needed


def test_same_seed_same_sample_other_seed_other_sample() -> None:
    pool = files(*range(1, 200))
    assert drill.sample(pool, 10, 0, 42) == drill.sample(pool, 10, 0, 42)
    assert drill.sample(pool, 10, 0, 42) != drill.sample(pool, 10, 0, 43)


@pytest.fixture
def backed_up(repo: Repository, tmp_path: Path) -> tuple[Repository, bytes]:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(12):
        (src / f"f{i}").write_bytes(hashlib.sha256(str(i).encode()).digest() * (i * 300 + 1))
    (src / "empty").write_bytes(b"")
    outcome = backup_paths(repo, BackupRequest(paths=[str(src)]))
    return repo, outcome.snapshot.tree


def test_sample_restore_verifies_every_file(backed_up: tuple[Repository, bytes], tmp_path: Path) -> None:
    repo, root = backed_up
    listing = drill.regular_files(repo.load_tree, root)
    assert len(listing) == 13 and all(f.node.sha256 for f in listing if f.node.size)
    chosen = drill.sample(listing, 5, 0, 1)
    outcome = drill.restore_sample(repo.load_tree, repo.blobs, chosen, str(tmp_path / "t"))
    assert outcome.ok and outcome.files == 5 and outcome.bytes > 0 and outcome.seconds > 0
    assert len(list((tmp_path / "t").iterdir())) == 5


def test_a_wrong_recorded_hash_is_a_failure(backed_up: tuple[Repository, bytes], tmp_path: Path) -> None:
    """The drill compares with the node's SHA-256, not only with the blob checks."""
    import msgspec

    repo, root = backed_up
    listing = [f for f in drill.regular_files(repo.load_tree, root) if f.node.size]
    forged = [SampledFile(f.path, msgspec.structs.replace(f.node, sha256=b"\0" * 32)) for f in listing[:2]]
    outcome = drill.restore_sample(repo.load_tree, repo.blobs, forged + listing[2:4], str(tmp_path / "t"))
    assert not outcome.ok and len(outcome.failures) == 2
    assert all("SHA-256 mismatch" in f for f in outcome.failures)
