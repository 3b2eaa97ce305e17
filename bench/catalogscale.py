"""`amber find` vs `restic find` at scale (issue 13): ≥ 1M files, ≥ 100 snapshots.

    python bench/catalogscale.py amber  --files 1000000 --snapshots 100 --churn 0.005 --workdir W
    python bench/catalogscale.py restic --files 1000000 --snapshots 10  --churn 0.005 --workdir W

``amber`` writes the synthetic model of bench/catalogmodel.py straight into an amber
repository (real encrypted trees and snapshots, no file data), builds the catalog
and times ``amber find`` at each snapshot count in ``--checkpoints`` and at the end.
``restic`` writes the same model to a real directory, backs it up ``--snapshots``
times with the same churn, and times ``restic find``. Both record wall times (median
of ``--rounds``) to ``W/<tool>.json``. Run amber with ``--checkpoints`` equal to restic's
snapshot count to compare the two on the same data.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from catalogmodel import TreeModel, write_amber, write_files
from tools import PASSWORD, Tool

PATTERNS = {"selective": "IMG_00424*", "extension": "*.iso", "no literal": "a?b*"}


def _tool(name: str, workdir: Path) -> Tool:
    """amber as `python -m amber`: the code this interpreter imports (PYTHONPATH wins)."""
    return Tool(name, workdir, [sys.executable, "-m", "amber"] if name == "amber" else [])


def _env(tool: Tool) -> dict[str, str]:
    env = tool.env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed amber has its bytecode cached
    return env


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(cmd: list[str], env: dict[str, str], capture: bool = True) -> tuple[float, str, float]:
    """Wall time, stdout (unless sent to /dev/null), and the CPU time (user + sys) the command used."""
    start, cpu = time.perf_counter(), _children_cpu()
    out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, check=False)  # fmt: skip
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {out.stderr[-2000:]}")
    return elapsed, out.stdout or "", _children_cpu() - cpu


def _median(rounds: int, cmd: list[str], env: dict[str, str]) -> tuple[float, list[float], str, float]:
    """Median of ``rounds`` runs with stdout to /dev/null, and the output of one more run."""
    runs = [_timed(cmd, env, capture=False) for _ in range(rounds)]
    times = [t for t, _, _ in runs]
    stdout = _timed(cmd, env)[1]
    return statistics.median(times), times, stdout, statistics.median(c for _, _, c in runs)


def _catalog_figures(tool: Tool) -> dict[str, float]:
    path = next((tool.state / "cache" / "amber").glob("*/catalog.sqlite"))
    conn = sqlite3.connect(path)
    versions = conn.execute("SELECT count(*) FROM ver").fetchone()[0]
    names = conn.execute("SELECT count(*) FROM name").fetchone()[0]
    conn.close()
    size = sum(os.path.getsize(p) for p in (str(path), f"{path}-wal") if os.path.exists(p))
    return {"versions": versions, "names": names, "bytes": size, "bytes_per_version": size / max(1, versions)}


def _finds(tool: Tool, rounds: int, extra: tuple[str, ...] = ("--json",)) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for label, pattern in PATTERNS.items():
        if tool.name == "restic":
            cmd = [*tool.exe, "-r", str(tool.repo), "find", "--json", pattern]
        else:
            cmd = [*tool.exe, "-r", str(tool.repo), "find", pattern, *extra]
        median, times, stdout, cpu = _median(rounds, cmd, _env(tool))
        lines = len(stdout.splitlines()) if tool.name == "amber" else sum(
            len(group.get("matches", [])) for group in json.loads(stdout or "[]")
        )  # fmt: skip
        out[label] = {"pattern": pattern, "median_s": median, "median_cpu_s": cpu, "runs_s": times,
                      "matches": lines}  # fmt: skip
        print(f"  {tool.name} find {pattern!r} {' '.join(extra)}: {median:.3f} s wall, {cpu:.3f} s CPU "
              f"({lines} matches) {[round(t, 3) for t in times]}", flush=True)  # fmt: skip
    return out


def run_amber(args: argparse.Namespace) -> dict[str, object]:
    from amber.repository import init_repository, open_repository
    from amber.storage import open_backend

    tool = _tool("amber", args.workdir)
    tool.reset()
    init_repository(open_backend(str(tool.repo)), PASSWORD.encode()).close()
    repo = open_repository(open_backend(str(tool.repo)), PASSWORD.encode())
    model = TreeModel(args.files, args.churn)
    results: dict[str, object] = {"files": args.files, "churn": args.churn, "checkpoints": {}}
    start = time.perf_counter()
    written = 0
    checkpoints = sorted({*args.checkpoints, args.snapshots})
    for _ in write_amber(model, repo, args.snapshots):
        written += 1
        if written % 10 == 0 or written == 1:
            print(f"amber: {written} snapshots written ({time.perf_counter() - start:.0f} s)", flush=True)
        if args.build_only or written not in checkpoints:
            continue
        generated = time.perf_counter() - start
        print(f"amber: {written} snapshots written ({generated:.0f} s)", flush=True)
        cmd = [*tool.exe, "-r", str(tool.repo), "find", "--limit", "1", "nothing-matches-this"]
        sync_s, _, _ = _timed(cmd, _env(tool))  # the first find after new snapshots ingests them
        print(f"  catalog sync: {sync_s:.1f} s", flush=True)
        point: dict[str, object] = {"snapshots": written, "sync_s": sync_s, "catalog": _catalog_figures(tool)}
        point["find"] = _finds(tool, args.rounds)
        point["find_versions"] = _finds(tool, args.rounds, ("--json", "--versions"))
        results["checkpoints"][str(written)] = point  # type: ignore[index]
        print(json.dumps(point["catalog"]), flush=True)
        _save(args, results)
        start = time.perf_counter()
    repo.close()
    return results


def run_restic(args: argparse.Namespace) -> dict[str, object]:
    tool = Tool("restic", args.workdir)
    tool.reset()
    subprocess.run(tool.init_cmd(), env=_env(tool), check=True, capture_output=True)
    data = args.workdir / "fs" / "data"
    shutil.rmtree(data, ignore_errors=True)
    model = TreeModel(args.files, args.churn)
    t = time.perf_counter()
    write_files(model, data)
    print(f"restic: wrote {args.files} files in {time.perf_counter() - t:.0f} s", flush=True)
    backups: list[float] = []
    results: dict[str, object] = {"files": args.files, "churn": args.churn, "restic": tool.version(),
                                  "backup_s": backups, "checkpoints": {}}  # fmt: skip
    for n in range(1, args.snapshots + 1):
        if n > 1:
            model.churn()
            write_files(model, data, only_changed=True)
        elapsed, _, _ = _timed([*tool.exe, "-r", str(tool.repo), "backup", "--quiet", str(data)], _env(tool))
        backups.append(elapsed)
        print(f"restic backup {n}: {elapsed:.1f} s", flush=True)
        if n in args.checkpoints or n == args.snapshots:
            results["checkpoints"][str(n)] = {"snapshots": n, "find": _finds(tool, args.rounds)}  # type: ignore[index]
            _save(args, results)
    return results


def _save(args: argparse.Namespace, results: dict[str, object]) -> None:
    """After every checkpoint, so a run stopped early keeps what it measured."""
    out = args.workdir / f"{args.tool}-{args.files}-{args.snapshots}.json"
    out.write_text(json.dumps(results, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tool", choices=("amber", "restic"))
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--snapshots", type=int, default=100)
    ap.add_argument("--churn", type=float, default=0.005)
    ap.add_argument("--checkpoints", type=lambda s: [int(x) for x in s.split(",") if x], default=[])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=Path("/var/tmp/amber-catalogscale"))
    ap.add_argument("--build-only", action="store_true",
                    help="Write the amber repository only: no catalog sync, no finds.")  # fmt: skip
    ap.add_argument("--finds-only", action="store_true",
                    help="Time the finds on the repository a previous run left in --workdir.")  # fmt: skip
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.finds_only:
        tool = _tool(args.tool, args.workdir)
        results: dict[str, object] = {"find": _finds(tool, args.rounds)}
        if args.tool == "amber":
            results["find_text"] = _finds(tool, args.rounds, ())
            results["find_versions"] = _finds(tool, args.rounds, ("--json", "--versions"))
            results["catalog"] = _catalog_figures(tool)
        (args.workdir / f"{args.tool}-finds.json").write_text(json.dumps(results, indent=2))
        return
    results = run_amber(args) if args.tool == "amber" else run_restic(args)
    _save(args, results)
    print(f"figures in {args.workdir}")


if __name__ == "__main__":
    main()
