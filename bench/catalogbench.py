"""`amber find` from the catalog vs `restic find`, on the same files, in one run.

Builds FILES small files in a tree of directories, backs them up SNAPSHOTS times
with both tools (CHURN of the files rewritten between backups), then times each
tool's `find` for three kinds of pattern: a selective name, an extension, and a
pattern with no three-character literal. It also reports the catalog's size per
file version and the time its sync adds after an unchanged re-backup.

    python bench/catalogbench.py --files 100000 --snapshots 20 --churn 0.005
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tools import Tool, ensure_installed

PATTERNS = {"selective": "report_0042*", "extension": "*.pdf", "no literal": "a?b*"}
EXTENSIONS = ("txt", "jpg", "odt", "py", "md", "png", "c", "h", "json", "csv")


def make_files(root: Path, count: int, rng: random.Random) -> list[Path]:
    files = []
    for i in range(count):
        d = root / f"d{i % 97:02d}" / f"s{(i // 97) % 31:02d}"
        d.mkdir(parents=True, exist_ok=True)
        # About 1% PDFs and 1% names like a3b_... (no three-character literal in "a?b*").
        if i % 100 == 1:
            name = f"scan_{i:06d}.pdf"
        elif i % 100 == 2:
            name = f"a{i % 7}b_{i}.txt"
        else:
            name = f"report_{i:06d}.{EXTENSIONS[i % len(EXTENSIONS)]}"
        path = d / name
        path.write_bytes(rng.randbytes(rng.randrange(16, 200)))
        files.append(path)
    return files


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    # An installed amber has its bytecode cached; without this, every run compiles its imports.
    env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    start = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {out.stderr[-2000:]}")
    return elapsed, out.stdout


def best_of(n: int, cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    runs = [timed(cmd, env) for _ in range(n)]
    return min(t for t, _ in runs), runs[0][1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--snapshots", type=int, default=20)
    ap.add_argument("--churn", type=float, default=0.005)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None, help="Write the figures here too.")
    args = ap.parse_args()
    notes = ensure_installed(["restic"])
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="amber-catalogbench-"))
    rng = random.Random(7)
    data = workdir / "data"
    files = make_files(data, args.files, rng)
    # `python -m amber`: the amber this interpreter imports (PYTHONPATH wins), not whatever a
    # console script in the environment was generated for.
    amber_exe = [sys.executable, "-m", "amber"]
    tools = {"amber": Tool("amber", workdir, amber_exe), "restic": Tool("restic", workdir)}
    backup_s: dict[str, list[float]] = {name: [] for name in tools}
    for tool in tools.values():
        tool.reset()
        subprocess.run(tool.init_cmd(), env=tool.env(), check=True, capture_output=True)
    # amber keeps its catalog from the first find on; build it before the backups are timed.
    for n in range(args.snapshots):
        if n:
            for path in rng.sample(files, max(1, int(len(files) * args.churn))):
                path.write_bytes(rng.randbytes(rng.randrange(16, 200)))
        for name, tool in tools.items():
            elapsed, _ = timed(tool.backup_cmd(data, n), tool.env())
            backup_s[name].append(elapsed)
        if n == 0:
            timed(
                [*tools["amber"].exe, "-r", str(tools["amber"].repo), "catalog", "rebuild"],
                tools["amber"].env(),
            )
    amber, restic = tools["amber"], tools["restic"]
    # Catalog sync cost after an unchanged re-backup: the same backup with the catalog off and on.
    off_env = {**amber.env(), "AMBER_CATALOG": "off"}
    unchanged_off = best_of(args.rounds, amber.backup_cmd(data, 0), off_env)[0]
    unchanged_on = best_of(args.rounds, amber.backup_cmd(data, 0), amber.env())[0]
    results: dict[str, object] = {
        "files": args.files,
        "snapshots": args.snapshots + 2 * args.rounds,
        "churn": args.churn,
        "notes": notes,
        "restic": restic.version(),
        "unchanged_rebackup_s": {"catalog_off": unchanged_off, "catalog_on": unchanged_on},
    }
    finds: dict[str, dict[str, float | int]] = {}
    for label, pattern in PATTERNS.items():
        amber_s, amber_out = best_of(
            args.rounds, [*amber.exe, "-r", str(amber.repo), "find", pattern, "--json"], amber.env()
        )
        restic_s, _ = best_of(
            args.rounds, [*restic.exe, "-r", str(restic.repo), "find", "--json", pattern], restic.env()
        )  # fmt: skip
        walk_s, walk_out = timed(
            [*amber.exe, "-r", str(amber.repo), "find", pattern, "--json", "--no-catalog"], amber.env()
        )
        assert amber_out == walk_out, f"catalog and walk disagree on {pattern}"
        finds[label] = {"pattern": pattern, "amber_s": amber_s, "restic_s": restic_s, "amber_walk_s": walk_s,
                        "ratio": amber_s / restic_s, "matches": len(amber_out.splitlines())}  # fmt: skip
    results["find"] = finds
    catalog = next((amber.state / "cache" / "amber").glob("*/catalog.sqlite"))
    conn = sqlite3.connect(catalog)
    versions = conn.execute("SELECT count(*) FROM ver").fetchone()[0]
    conn.close()
    size = sum(os.path.getsize(p) for p in (str(catalog), f"{catalog}-wal") if os.path.exists(p))
    results["catalog"] = {"versions": versions, "bytes": size, "bytes_per_version": size / max(1, versions)}
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
