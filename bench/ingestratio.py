"""Catalog ingest as a share of the backup it follows, step by step, in one run (issue 13).

    python bench/ingestratio.py --files 120000 --snapshots 100 --workdir W

bench/churnmodel.py's tree (by default the heavy-churn model of bench/catalogsame.py: 4%
of the tree added, 4% deleted, 4% renamed and 1% modified per step; ``--churn 0.005``
keeps those proportions at the issue's 0.5% a day) is written to ``--data``
(tmpfs); each step ``amber backup`` runs with the catalog off, then the catalog syncs
the new snapshot in a separate process that times the sync alone (wall and CPU, without
start-up and key derivation). After the last step the same tree is backed up unchanged
``--unchanged`` times, each followed by its sync. Backup and ingest of one step run back
to back, so machine noise hits both. Figures go to ``W/ingestratio.json`` after every step.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from catalogsame import _catalog, _env, _load, _run
from churnmodel import ChurnModel, apply
from tools import PASSWORD, Tool


def ingest(repo_path: str) -> None:
    """Run in the amber tool's environment: sync the catalog, print its wall and CPU seconds."""
    from amber.catalog import store
    from amber.catalog.ingest import sync
    from amber.repository import open_repository
    from amber.storage import open_backend

    repo = open_repository(open_backend(repo_path), PASSWORD.encode())
    try:
        conn, _ = store.open_catalog(repo.id)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        result = sync(conn, repo)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
        conn.close()
    finally:
        repo.close()
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    print(json.dumps({"sync_s": wall, "sync_cpu_s": cpu, "ingested": result.ingested}))


def _step(amber: Tool, data: Path, step: dict[str, object]) -> None:
    env = _env(amber, AMBER_CATALOG="off")  # the ingest is timed on its own right after
    wall, cpu, _ = _run([*amber.exe, "-r", str(amber.repo), "backup", str(data)], env)
    _, _, out = _run([sys.executable, __file__, "--ingest", str(amber.repo)], _env(amber))
    sync = json.loads(out)
    step.update(backup_s=wall, backup_cpu_s=cpu, ingest_s=sync["sync_s"], ingest_cpu_s=sync["sync_cpu_s"])
    step.update(wall_ratio=sync["sync_s"] / wall, cpu_ratio=sync["sync_cpu_s"] / cpu)
    step["catalog"] = _catalog(amber)


def _summary(steps: list[dict[str, object]]) -> dict[str, float]:
    def med(key: str) -> float:
        return statistics.median(float(s[key]) for s in steps)  # type: ignore[arg-type]

    keys = ("backup_s", "ingest_s", "backup_cpu_s", "ingest_cpu_s", "wall_ratio", "cpu_ratio")
    return {"steps": len(steps), **{f"median_{k}": med(k) for k in keys}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=120_000)
    ap.add_argument("--snapshots", type=int, default=100)
    ap.add_argument(
        "--churn",
        type=float,
        default=0.13,
        help="Share of the tree changed per step, split like the heavy model (default 0.13:"
        " 4%% added, 4%% deleted, 4%% renamed, 1%% modified).",
    )
    ap.add_argument("--unchanged", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=Path("/var/tmp/amber-ingestratio"))
    ap.add_argument("--data", type=Path, default=Path("/dev/shm/ingestratio-data"))
    ap.add_argument("--ingest", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.ingest:
        ingest(args.ingest)
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    amber = Tool("amber", args.workdir, [sys.executable, "-m", "amber"])
    amber.reset()
    _run(amber.init_cmd(), _env(amber))
    (amber.state / "cache" / "amber").mkdir(parents=True, exist_ok=True)
    shutil.rmtree(args.data, ignore_errors=True)
    args.data.mkdir(parents=True)
    f = args.files
    quarter = round(f * args.churn * 4 / 13)
    model = ChurnModel(f, adds=quarter, deletes=quarter, renames=quarter, modifies=round(f * args.churn / 13))
    state: dict[str, object] = {}
    steps: list[dict[str, object]] = []
    results: dict[str, object] = {"files": f, "churn": args.churn, "snapshots": args.snapshots}
    results.update(steps=steps, unchanged=[])
    out_file = args.workdir / "ingestratio.json"
    for n in range(1, args.snapshots + args.unchanged + 1):
        changed = n <= args.snapshots
        if 1 < n <= args.snapshots:
            model.step()
        step: dict[str, object] = {"n": n, "load": _load(), "changed": changed}
        if changed:
            new = model.paths()
            step["written"], step["removed"] = apply(args.data, state, new)  # type: ignore[arg-type]
            state = new  # type: ignore[assignment]
        _step(amber, args.data, step)
        (steps if changed else results["unchanged"]).append(step)  # type: ignore[attr-defined]
        print(json.dumps(step), flush=True)
        results["summary_changed"] = _summary(steps[1:]) if len(steps) > 1 else {}
        if not changed:
            results["summary_unchanged"] = _summary(results["unchanged"])  # type: ignore[arg-type]
        out_file.write_text(json.dumps(results, indent=1))
    print(json.dumps({k: v for k, v in results.items() if k.startswith("summary")}, indent=1))
    shutil.rmtree(args.data, ignore_errors=True)


if __name__ == "__main__":
    main()
