"""Prune benchmark: amber prune vs restic prune on the same history (issue 3 §6).

Builds one source tree of many tiny files (each file is one blob for both
tools), then for each of ``--snapshots`` generations rewrites ``--change`` files
with new unique content and backs up with both tools. With the defaults (10k
files, 10k changed, 100 snapshots) that is ~1M data blobs. Then both forget all
but the last half (``--keep-last``) and prune with their defaults (5 % unused
tolerated) while wall time, CPU time and peak RSS are measured.

    python bench/prune.py [--files N] [--change N] [--snapshots N] [--workdir DIR]
    python bench/run.py --prune ...     # the same, from the main harness

Results go to WORKDIR/prune-results.json and stdout.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import blake3
from measure import Measurement, run_measured
from tools import Tool, ensure_installed

TOOLS = ("amber", "restic")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=10_000, help="files in the source tree")
    p.add_argument("--change", type=int, default=10_000, help="files rewritten per generation")
    p.add_argument("--snapshots", type=int, default=100)
    p.add_argument("--keep-last", type=int, default=0, help="snapshots kept by forget (default: half)")
    p.add_argument("--file-size", type=int, default=200, help="bytes per file (one blob each)")
    p.add_argument("--workdir", type=Path, default=Path("/var/tmp/amber-bench-prune"))
    p.add_argument("--skip", default="", help="comma-separated tools to skip (restic)")
    p.add_argument("--prune", action="store_true", help=argparse.SUPPRESS)  # passed on by run.py
    return p.parse_args(argv)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def write_generation(src: Path, files: int, change: int, gen: int, size: int) -> None:
    """Generation 0 writes every file; later ones rewrite ``change`` of them (round robin)."""
    count = files if gen == 0 else change
    start = 0 if gen == 0 else (gen * change) % files
    for k in range(count):
        i = (start + k) % files
        d = src / f"d{i % 100:02d}"
        if gen == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}").write_bytes(blake3.blake3(b"%d-%d" % (gen, i)).digest(length=size))


def run(cmd: list[str], tool: Tool) -> None:
    proc = subprocess.run(cmd, env=tool.env(), capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")


def forget_cmd(tool: Tool, keep: int) -> list[str]:
    return [*tool.exe, "-r", str(tool.repo), "forget", "--keep-last", str(keep)]


def prune_cmd(tool: Tool) -> list[str]:
    return [*tool.exe, "-r", str(tool.repo), "prune"]


def snapshot_count(tool: Tool) -> int:
    return sum(1 for _ in (tool.repo / "snapshots").iterdir())


def repo_size(tool: Tool) -> int:
    return sum(p.stat().st_size for p in tool.repo.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = [n for n in TOOLS if n not in {s.strip() for s in args.skip.split(",")}]
    for note in ensure_installed(names):
        log(note)
    args.workdir.mkdir(parents=True, exist_ok=True)
    src = args.workdir / "src"
    shutil.rmtree(src, ignore_errors=True)
    tools = [Tool(n, args.workdir) for n in names]
    for tool in tools:
        tool.reset()
        run(tool.init_cmd(), tool)
    keep = args.keep_last or args.snapshots // 2
    started = time.perf_counter()
    build: dict[str, float] = dict.fromkeys(names, 0.0)
    for gen in range(args.snapshots):
        write_generation(src, args.files, args.change, gen, args.file_size)
        for tool in tools:
            t0 = time.perf_counter()
            run(tool.backup_cmd(src, gen), tool)
            build[tool.name] += time.perf_counter() - t0
        if gen % 10 == 9:
            log(f"{gen + 1}/{args.snapshots} snapshots ({time.perf_counter() - started:.0f} s)")
    blobs = args.files + args.change * (args.snapshots - 1)
    results: dict[str, object] = {
        "files": args.files, "change": args.change, "snapshots": args.snapshots, "keep_last": keep,
        "data_blobs": blobs, "build_backup_s": build,
    }  # fmt: skip
    for tool in tools:
        run(forget_cmd(tool, keep), tool)
        assert snapshot_count(tool) == keep, (tool.name, snapshot_count(tool))
        before = repo_size(tool)
        log_path = args.workdir / "logs" / f"{tool.name}-prune.log"
        m: Measurement = run_measured(prune_cmd(tool), tool.env(), log_path)
        if not m.ok:
            raise SystemExit(f"{tool.name} prune failed: {m.error}")
        results[tool.name] = {
            "wall_s": round(m.wall_s, 2), "cpu_s": round(m.cpu_s, 2),
            "max_rss_mib": round(m.max_rss_kib / 1024, 1),
            "repo_bytes_before": before, "repo_bytes_after": repo_size(tool),
        }  # fmt: skip
        log(f"{tool.name} prune: {m.wall_s:.1f} s wall, {m.cpu_s:.1f} s CPU, "
            f"{m.max_rss_kib / 1024:.0f} MiB peak RSS")
    if "amber" in results and "restic" in results:
        a, r = results["amber"], results["restic"]
        assert isinstance(a, dict) and isinstance(r, dict)
        results["ratio_wall"] = round(a["wall_s"] / r["wall_s"], 2)
        results["ratio_rss"] = round(a["max_rss_mib"] / r["max_rss_mib"], 2)
    (args.workdir / "prune-results.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
