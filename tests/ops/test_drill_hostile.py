"""A drill of a hostile snapshot fails and writes nothing outside its scratch directory."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from amber.ops.drills.drill import DrillRequest, run_drill
from amber.repository import Repository
from amber.services.backup import BackupRequest, backup_paths
from tests.engine.restore_hostile import Canary, dir_node, file_node, save_raw_tree, symlink_node


def _hostile_snapshot(repo: Repository, tmp_path: Path, canary: Canary) -> str:
    src = tmp_path / "src"
    src.mkdir()
    (src / "real.txt").write_bytes(b"real")
    snap = backup_paths(repo, BackupRequest(paths=[str(src)])).snapshot
    escape = save_raw_tree(repo, file_node(repo, b"sib.txt", b"overwritten"), file_node(repo, b"new", b"x"))
    nested = save_raw_tree(repo, dir_node(b"..", save_raw_tree(repo, dir_node(b"..", escape, 0o777)), 0o777))
    d = save_raw_tree(repo, file_node(repo, b"precious.txt", b"through the symlink"))
    root = save_raw_tree(
        repo,
        dir_node(b"..", escape, 0o777),
        dir_node(b"nest", nested),
        file_node(repo, b"../x", b"x"),
        dir_node(b"d", save_raw_tree(repo)),
        symlink_node(b"d", os.fsencode(canary.outside)),
        dir_node(b"d", d),
        file_node(repo, b"ok", b"fine"),
    )
    repo.blobs.flush()
    return repo.save_snapshot(msgspec.structs.replace(snap, tree=root, parent=""))


def test_full_drill_of_a_hostile_snapshot_fails_inside_its_scratch(repo: Repository, tmp_path: Path) -> None:
    canary = Canary(tmp_path / "canary")
    sid = _hostile_snapshot(repo, tmp_path, canary)
    report = run_drill(repo, DrillRequest(full=True, snapshot=sid, scratch=str(canary.target)))
    assert not report.ok and report.status == "integrity"
    assert report.outcome.failures, "a drill that skipped entries must fail"
    assert all("\n" not in f for f in report.outcome.failures)
    canary.assert_unchanged()
    assert os.listdir(canary.target) == []  # the scratch directory (its parent is the target) is gone


def test_sampled_drill_restores_flat_names_only(repo: Repository, tmp_path: Path) -> None:
    canary = Canary(tmp_path / "canary")
    sid = _hostile_snapshot(repo, tmp_path, canary)
    report = run_drill(repo, DrillRequest(files=50, snapshot=sid, scratch=str(canary.target), seed=1))
    canary.assert_unchanged()
    assert os.listdir(canary.target) == []
    # Trees with bad names are refused when decoded, so the drill reports the damage.
    assert any("not allowed" in f for f in report.outcome.failures), report.outcome.failures
