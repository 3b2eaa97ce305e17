"""False-positive and false-negative rates of the ransomware check (issue 16 §1).

    python bench/anomaly_rates.py [--seeds 5]

Each run: a fresh repository, a home tree (tests/anomaly/scenarios.py, ~280
files of documents, PDFs, photos, programs, sources and logs; seed varies the
content), a first backup, one scenario applied, a second backup with the
default thresholds; for the build tree a rebuild and a third. Benign scenarios
flagged are false positives; attacks (30-50% of the files encrypted, with and
without renames and notes) not flagged are false negatives. Prints a table for
docs/operations.md.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("AMBER_KDF", "t=1,m=8192,p=1")

from tests.anomaly import scenarios  # noqa: E402

from amber.anomaly.scoring import Thresholds, assess  # noqa: E402
from amber.repository import init_repository, open_repository  # noqa: E402
from amber.services.backup import BackupRequest, backup_paths  # noqa: E402
from amber.storage import open_backend  # noqa: E402


def _verdict(repo_dir: Path, home: Path) -> str:
    repo = open_repository(open_backend(str(repo_dir)), b"pw")
    try:
        req = BackupRequest(paths=[str(home)], assess=lambda f: assess(f, Thresholds()))
        anomaly = backup_paths(repo, req).snapshot.summary.anomaly
        return anomaly.verdict if anomaly else "none"
    finally:
        repo.close()


def trial(name: str, seed: int) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        repo_dir, home = Path(tmp) / "repo", Path(tmp) / "home"
        init_repository(open_backend(str(repo_dir)), b"pw").close()
        scenarios.make_home(home, seed)
        _verdict(repo_dir, home)
        rng = random.Random(seed)
        if name in scenarios.BENIGN:
            scenarios.BENIGN[name](home, rng)
            if name == "build_tree":
                first = _verdict(repo_dir, home)
                scenarios.rebuild(home, rng)
                second = _verdict(repo_dir, home)
                return "suspicious" if "suspicious" in (first, second) else second
        else:
            attack, share = name.rsplit("@", 1)
            scenarios.ATTACKS[attack](home, rng, float(share))
        return _verdict(repo_dir, home)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    attacks = [f"{a}@{s}" for a in sorted(scenarios.ATTACKS) for s in ("0.3", "0.4", "0.5")]
    print("| scenario | runs | flagged |")
    print("|---|---|---|")
    for name in [*sorted(scenarios.BENIGN), *attacks]:
        flagged = sum(trial(name, seed) == "suspicious" for seed in range(args.seeds))
        print(f"| {name} | {args.seeds} | {flagged} |", flush=True)


if __name__ == "__main__":
    main()
