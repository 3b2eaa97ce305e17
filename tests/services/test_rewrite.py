"""rewrite on real repositories: new snapshots without the matching paths, originals kept or forgotten."""

from __future__ import annotations

from pathlib import Path

import pytest

from amber.errors import AppendOnlyViolation
from amber.services import check as check_service
from amber.services.rewrite import REWRITE_TAG, RewriteRequest, rewrite
from amber.services.snapshots import SnapshotFilter
from tests.services.erasure_support import backup, make_repo, manifest, open_repo, random_bytes, restored

Setup = tuple[Path, Path, list[str]]


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """Two snapshots of a tree holding a secret file and a secret directory."""
    repo_dir = make_repo(tmp_path / "repo")
    src = tmp_path / "src"
    (src / "docs" / "private").mkdir(parents=True)
    (src / "docs" / "report.txt").write_bytes(random_bytes(5000, "report"))
    (src / "docs" / "secret.pdf").write_bytes(random_bytes(70_000, "secret"))
    (src / "docs" / "private" / "a").write_bytes(random_bytes(3000, "a"))
    (src / "docs" / "private" / "b").write_bytes(random_bytes(4000, "b"))
    first = backup(repo_dir, src)
    (src / "docs" / "report.txt").write_bytes(random_bytes(6000, "report2"))
    second = backup(repo_dir, src, tags=("weekly",))
    return repo_dir, src, [first, second]


def _expected(src: Path) -> dict[str, str]:
    return {k: v for k, v in manifest(src).items() if "secret" not in k and "private" not in k}


def test_rewrite_keeps_originals_and_tags_the_new_snapshots(setup: Setup,
                                                             tmp_path: Path) -> None:  # fmt: skip
    repo_dir, src, (first, second) = setup
    repo = open_repo(repo_dir)
    try:
        result = rewrite(repo, RewriteRequest(excludes=["secret.pdf", f"{src}/docs/private"]))
        assert [e.old_id for e in result.rewritten] == [first, second]
        entry = result.rewritten[1]
        assert entry.files == 3 and entry.bytes == 77_000
        snaps = repo.snapshots()
        assert set(snaps) == {first, second, *(e.new_id for e in result.rewritten)}
        new = snaps[entry.new_id]
        old = snaps[second]
        assert new.original == second and new.time == old.time and new.hostname == old.hostname
        assert sorted(new.tags) == sorted([*old.tags, REWRITE_TAG])
        assert new.parent == result.rewritten[0].new_id  # the parent is the parent's rewrite
        assert new.summary.total_files == old.summary.total_files - 3
        assert new.summary.total_bytes == old.summary.total_bytes - 77_000
        assert restored(repo, entry.new_id, src, tmp_path) == _expected(src)
        assert restored(repo, second, src, tmp_path) == manifest(src)  # the original is untouched
        assert check_service.check(repo).ok
    finally:
        repo.close()


def test_forget_removes_originals_and_a_second_run_changes_nothing(setup: Setup) -> None:
    repo_dir, _, (first, second) = setup
    repo = open_repo(repo_dir)
    try:
        req = RewriteRequest(excludes=["secret.pdf"], forget=True)
        result = rewrite(repo, req)
        assert sorted(result.forgotten) == sorted([first, second])
        snaps = repo.snapshots()
        assert set(snaps) == {e.new_id for e in result.rewritten}
        assert all(REWRITE_TAG not in s.tags for s in snaps.values())
        again = rewrite(repo, req)
        assert not again.rewritten and again.examined == 2
    finally:
        repo.close()


def test_dry_run_writes_nothing(setup: Setup) -> None:
    repo_dir, _, _ = setup
    before = sorted(p.name for p in repo_dir.rglob("*") if p.is_file() and "locks" not in p.parts)
    repo = open_repo(repo_dir)
    try:
        result = rewrite(repo, RewriteRequest(excludes=["secret.pdf"], forget=True, dry_run=True))
    finally:
        repo.close()
    assert len(result.rewritten) == 2 and not result.forgotten and all(not e.new_id for e in result.rewritten)
    assert sorted(p.name for p in repo_dir.rglob("*") if p.is_file() and "locks" not in p.parts) == before


def test_selection_by_id_and_by_tag(setup: Setup) -> None:
    repo_dir, _, (first, second) = setup
    repo = open_repo(repo_dir)
    try:
        by_id = rewrite(repo, RewriteRequest(excludes=["secret.pdf"], snapshot_ids=[first[:8]]))
        assert [e.old_id for e in by_id.rewritten] == [first]
        weekly = SnapshotFilter(tags=["weekly"])
        by_tag = rewrite(repo, RewriteRequest(excludes=["secret.pdf"], filter=weekly))
        assert [e.old_id for e in by_tag.rewritten] == [second]
    finally:
        repo.close()


def test_a_rewrite_an_interrupted_run_wrote_is_used_again(setup: Setup) -> None:
    repo_dir, _, (first, second) = setup
    repo = open_repo(repo_dir)
    try:
        kept = rewrite(repo, RewriteRequest(excludes=["secret.pdf"]))  # as if killed before forgetting
        req = RewriteRequest(excludes=["secret.pdf"], forget=True, snapshot_ids=[first, second])
        again = rewrite(repo, req)
        assert [e.new_id for e in again.rewritten] == [e.new_id for e in kept.rewritten]
        assert set(repo.snapshots()) == {e.new_id for e in kept.rewritten}
    finally:
        repo.close()


def test_a_snapshot_whose_every_path_is_excluded_is_not_rewritten(setup: Setup) -> None:
    repo_dir, src, _ = setup
    repo = open_repo(repo_dir)
    try:
        result = rewrite(repo, RewriteRequest(excludes=[str(src)], forget=True))
        assert all(e.emptied and not e.new_id for e in result.rewritten)
        assert repo.snapshots() == {}
    finally:
        repo.close()


def test_append_only_allows_a_rewrite_but_not_forgetting_originals(tmp_path: Path) -> None:
    repo_dir = make_repo(tmp_path / "repo", append_only=True)
    src = tmp_path / "src"
    src.mkdir()
    (src / "secret").write_bytes(b"s" * 2000)
    (src / "keep").write_bytes(b"k" * 2000)
    sid = backup(repo_dir, src)
    repo = open_repo(repo_dir)
    try:
        with pytest.raises(AppendOnlyViolation, match="rewrite --forget"):
            rewrite(repo, RewriteRequest(excludes=["secret"], forget=True))
        result = rewrite(repo, RewriteRequest(excludes=["secret"]))
        assert set(repo.snapshots()) == {sid, result.rewritten[0].new_id}
    finally:
        repo.close()


def test_suspicious_snapshots_keep_their_tags_so_the_hold_moves_with_them(tmp_path: Path) -> None:
    repo_dir = make_repo(tmp_path / "repo")
    src = tmp_path / "src"
    src.mkdir()
    (src / "secret").write_bytes(b"s" * 2000)
    (src / "keep").write_bytes(b"k" * 2000)
    backup(repo_dir, src, tags=("suspicious",))
    repo = open_repo(repo_dir)
    try:
        result = rewrite(repo, RewriteRequest(excludes=["secret"], forget=True))
        [entry] = result.rewritten
        assert entry.flags == ["suspicious"]
        assert repo.load_snapshot(entry.new_id).tags == ["suspicious"]
    finally:
        repo.close()
