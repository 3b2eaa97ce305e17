"""purge on real repositories: rewritten, pruned, and proven gone from every pack."""

from __future__ import annotations

from pathlib import Path

import pytest

from amber.errors import IntegrityError, PurgeRefused
from amber.repository import BlobType
from amber.services import check as check_service
from amber.services import prune as prune_service
from amber.services.purge import PurgeRequest, purge
from amber.services.rewrite import RewriteRequest, rewrite
from tests.services.erasure_support import (
    backup,
    holds_bytes_of,
    make_repo,
    manifest,
    open_repo,
    random_bytes,
    restored,
    stored_plaintexts,
)

SECRET_NAME = b"medical-record-of-alice.pdf"


def _tree(tmp_path: Path, secret: bytes) -> Path:
    src = tmp_path / "src"
    (src / "docs").mkdir(parents=True)
    (src / "docs" / SECRET_NAME.decode()).write_bytes(secret)
    (src / "docs" / "big-kept.bin").write_bytes(random_bytes(1_500_000, "kept"))
    (src / "notes.txt").write_bytes(b"v1" * 3000)
    return src


def _names_in_trees(repo_dir: Path) -> bool:
    repo = open_repo(repo_dir)
    try:
        return any(SECRET_NAME in p for t, _, p in stored_plaintexts(repo) if t == BlobType.TREE)
    finally:
        repo.close()


def test_purge_erases_a_file_from_every_snapshot_and_every_pack(tmp_path: Path) -> None:
    repo_dir = make_repo(tmp_path / "repo")
    secret = random_bytes(2_500_000, "secret")
    src = _tree(tmp_path, secret)
    snaps, expected = [], {}
    for i in range(3):
        (src / "notes.txt").write_bytes(f"v{i}".encode() * 3000)
        snaps.append(backup(repo_dir, src))
        expected[snaps[-1]] = {k: v for k, v in manifest(src).items() if SECRET_NAME.decode() not in k}
    repo = open_repo(repo_dir)
    try:
        assert holds_bytes_of(stored_plaintexts(repo), secret)  # the control: it is there before
        result = purge(repo, PurgeRequest([f"{src}/docs/{SECRET_NAME.decode()}"]))
        assert result.verified, result.report
        assert [e.old_id for e in result.rewrite.rewritten] == snaps
        assert result.report is not None and not result.report.retained and result.report.erased > 0
        assert not result.targets & {b for b, _ in repo.blobs.index.blobs()}
        left = repo.snapshots()
        assert set(left) == {e.new_id for e in result.rewrite.rewritten}
        for entry in result.rewrite.rewritten:
            assert restored(repo, entry.new_id, src, tmp_path) == expected[entry.old_id]
        assert check_service.check(repo, read_data=True).ok
        assert not holds_bytes_of(stored_plaintexts(repo), secret)
        audit = result.audit([str(src)], [])
        assert audit["paths"] == [f"{src}/docs/{SECRET_NAME.decode()}"] and audit["verified"]
        assert [s["old"] for s in audit["snapshots"]] == snaps and audit["files"] == 3
    finally:
        repo.close()
    assert not _names_in_trees(repo_dir)  # the trees that named it are gone too


def test_packs_holding_purged_blobs_are_repacked_below_the_usual_threshold(tmp_path: Path) -> None:
    """A small file beside much kept data: prune's 5% rule would keep its pack; purge does not."""
    secret = random_bytes(30_000, "small secret")
    control_dir = make_repo(tmp_path / "control")
    src = _tree(tmp_path, secret)
    backup(control_dir, src)
    repo = open_repo(control_dir)
    try:  # plain rewrite --forget + prune leaves the bytes stored
        rewrite(repo, RewriteRequest(excludes=[SECRET_NAME.decode()], forget=True))
        prune_service.prune(repo)
        assert holds_bytes_of(stored_plaintexts(repo), secret)
    finally:
        repo.close()
    repo_dir = make_repo(tmp_path / "repo")
    backup(repo_dir, src)
    repo = open_repo(repo_dir)
    try:
        result = purge(repo, PurgeRequest([SECRET_NAME.decode()]))
        assert result.verified and result.prune is not None and result.prune.plan.repacked.packs >= 1
        assert not holds_bytes_of(stored_plaintexts(repo), secret)
    finally:
        repo.close()


def test_bytes_a_kept_file_shares_are_retained_and_the_kept_path_is_named(tmp_path: Path) -> None:
    repo_dir = make_repo(tmp_path / "repo")
    secret = random_bytes(40_000, "dup")
    src = _tree(tmp_path, secret)
    (src / "copy-elsewhere.pdf").write_bytes(secret)
    sid = backup(repo_dir, src)
    repo = open_repo(repo_dir)
    try:
        dry = purge(repo, PurgeRequest([SECRET_NAME.decode()], dry_run=True))  # foreseen before anything goes
        assert dry.report is not None and dry.report.kept_paths() == [f"{src}/copy-elsewhere.pdf"]
        assert not dry.verified and dry.audit([], [])["would_be_retained_by"] == [f"{src}/copy-elsewhere.pdf"]
        result = purge(repo, PurgeRequest([SECRET_NAME.decode()]))
        report = result.report
        assert result.verified and report is not None and report.retained
        new_id = result.rewrite.rewritten[0].new_id
        assert report.kept_paths() == [f"{src}/copy-elsewhere.pdf"]
        assert all(places == [(new_id, f"{src}/copy-elsewhere.pdf")] for places in report.retained.values())
        assert result.audit([], [])["retained_by"] == [f"{src}/copy-elsewhere.pdf"]
        assert sid not in repo.snapshots()
    finally:
        repo.close()


def test_purge_by_content_hash_finds_every_name(tmp_path: Path) -> None:
    import hashlib

    repo_dir = make_repo(tmp_path / "repo")
    secret = random_bytes(40_000, "hash")
    src = _tree(tmp_path, secret)
    (src / "renamed.bin").write_bytes(secret)
    backup(repo_dir, src)
    repo = open_repo(repo_dir)
    try:
        result = purge(repo, PurgeRequest([], [hashlib.sha256(secret).digest()]))
        assert result.verified and result.report is not None and not result.report.retained
        assert sorted(r.path.rsplit(b"/", 1)[1] for r in result.rewrite.rewritten[0].removed) == [
            SECRET_NAME, b"renamed.bin"]  # fmt: skip
        assert not holds_bytes_of(stored_plaintexts(repo), secret)
    finally:
        repo.close()


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    repo_dir = make_repo(tmp_path / "repo")
    src = _tree(tmp_path, random_bytes(20_000, "dry"))
    sid = backup(repo_dir, src)
    before = sorted(p.name for p in repo_dir.rglob("*") if p.is_file() and "locks" not in p.parts)
    repo = open_repo(repo_dir)
    try:
        result = purge(repo, PurgeRequest([SECRET_NAME.decode()], dry_run=True))
        assert result.dry_run and [e.old_id for e in result.rewrite.rewritten] == [sid] and result.targets
        assert result.report is not None and not result.report.retained and not result.verified
    finally:
        repo.close()
    assert sorted(p.name for p in repo_dir.rglob("*") if p.is_file() and "locks" not in p.parts) == before


def test_append_only_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    repo_dir = make_repo(tmp_path / "repo", append_only=True)
    src = _tree(tmp_path, random_bytes(20_000, "ao"))
    sid = backup(repo_dir, src)
    repo = open_repo(repo_dir)
    try:
        with pytest.raises(PurgeRefused, match="append-only") as info:
            purge(repo, PurgeRequest([SECRET_NAME.decode()]))
        assert info.value.exit_code == 38
        assert set(repo.snapshots()) == {sid}
    finally:
        repo.close()


def test_targets_of_an_interrupted_purge_are_erased_by_the_next(tmp_path: Path) -> None:
    """Killed after forgetting the originals, before prune: only the kept target list still knows."""
    repo_dir = make_repo(tmp_path / "repo")
    secret = random_bytes(30_000, "journal")
    src = _tree(tmp_path, secret)
    backup(repo_dir, src)
    repo = open_repo(repo_dir)
    try:
        first = rewrite(repo, RewriteRequest(excludes=[SECRET_NAME.decode()], forget=True))
        assert holds_bytes_of(stored_plaintexts(repo), secret)
        nothing = purge(repo, PurgeRequest([SECRET_NAME.decode()]))  # nothing matches any more
        assert not nothing.rewrite.rewritten and holds_bytes_of(stored_plaintexts(repo), secret)
        result = purge(repo, PurgeRequest([SECRET_NAME.decode()], targets=first.erasable.all_blobs))
        assert result.verified and not holds_bytes_of(stored_plaintexts(repo), secret)
    finally:
        repo.close()


def test_an_unreadable_snapshot_stops_purge_before_any_change(tmp_path: Path) -> None:
    repo_dir = make_repo(tmp_path / "repo")
    src = _tree(tmp_path, random_bytes(20_000, "damaged"))
    good = backup(repo_dir, src)
    bad = backup(repo_dir, src)
    (repo_dir / "snapshots" / bad).write_bytes(b"garbage")
    repo = open_repo(repo_dir)
    try:
        with pytest.raises(IntegrityError, match="cannot be read"):
            purge(repo, PurgeRequest([SECRET_NAME.decode()]))
        assert good in repo.snapshots([])
    finally:
        repo.close()
