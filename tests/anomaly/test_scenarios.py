"""Real backups of benign churn and of simulated attacks: the verdict each one gets."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from amber.anomaly.scoring import Thresholds, assess
from amber.repository import Repository
from amber.services.backup import SUSPICIOUS_TAG, BackupRequest, backup_paths
from tests.anomaly import scenarios

pytestmark = pytest.mark.slow  # two or three real backups each


def _backup(repo: Repository, root: Path) -> tuple[str, str]:
    req = BackupRequest(paths=[str(root)], assess=lambda facts: assess(facts, Thresholds()))
    out = backup_paths(repo, req)
    anomaly = out.snapshot.summary.anomaly
    return out.snapshot_id, anomaly.verdict if anomaly is not None else "none"


@pytest.mark.parametrize("name", sorted(scenarios.BENIGN))
def test_benign_churn_is_not_flagged(repo: Repository, tmp_path: Path, name: str) -> None:
    root = tmp_path / "home"
    scenarios.make_home(root)
    assert _backup(repo, root)[1] == "none"  # no parent: nothing to compare
    rng = random.Random(1)
    scenarios.BENIGN[name](root, rng)
    if name == "build_tree":
        assert _backup(repo, root)[1] == "clean"
        scenarios.rebuild(root, rng)
    sid, verdict = _backup(repo, root)
    assert verdict == "clean", repo.load_snapshot(sid).summary.anomaly
    assert SUSPICIOUS_TAG not in repo.load_snapshot(sid).tags


@pytest.mark.parametrize("name", sorted(scenarios.ATTACKS))
def test_attack_is_flagged_and_still_written(repo: Repository, tmp_path: Path, name: str) -> None:
    root = tmp_path / "home"
    scenarios.make_home(root)
    _backup(repo, root)
    scenarios.ATTACKS[name](root, random.Random(2))
    sid, verdict = _backup(repo, root)
    snap = repo.load_snapshot(sid)
    assert verdict == "suspicious"
    assert SUSPICIOUS_TAG in snap.tags
    anomaly = snap.summary.anomaly
    assert anomaly is not None and anomaly.reasons and anomaly.examples and anomaly.top_dirs
    assert anomaly.counts["files_rewritten"] + anomaly.counts["files_renamed"] >= 80


def test_attack_below_min_share_is_not_flagged(repo: Repository, tmp_path: Path) -> None:
    root = tmp_path / "home"
    scenarios.make_home(root)
    _backup(repo, root)
    scenarios.ransomware_in_place(root, random.Random(3), share=0.05)  # 12 files: under min_files
    assert _backup(repo, root)[1] == "clean"
