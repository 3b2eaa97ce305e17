"""`amber find` vs `restic find` on the same real backups, ≥ 100 snapshots (issue 13).

    python bench/catalogsame.py --files 120000 --snapshots 100 --rounds 3 --restic-rounds 1 --workdir W

bench/churnmodel.py's tree (new paths every step: imports, adds, deletes, renames,
modifications) is written to ``W/data``; each step both tools back it up for real
(``restic backup``, ``amber backup`` with the catalog switched off), and then the
catalog ingests amber's new snapshot in a separate process (``_ingest``: the time of
the sync alone, without start-up and key derivation). When all snapshots exist, the
three patterns are searched with ``amber find --json`` and ``restic find --json``,
alternating, ``--rounds`` times (restic ``--restic-rounds`` times); both outputs are
parsed into (snapshot number, path) pairs and compared, and ``amber find --no-catalog``
is timed for reference (``--walk``).
Figures go to ``W/catalogsame.json`` after every step; ``--finds-only`` repeats the
finds on what a run left.
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
from churnmodel import ChurnModel, apply
from tools import PASSWORD, Tool

# "a?b_*", not "a?b*": restic's find also prints everything under a matching directory, and
# "a?b*" matches the data directory's own name (amber-...), so restic listed the whole tree.
PATTERNS = {"selective": "IMG_004242*", "extension": "*.iso", "no literal": "a?b_*"}


def _env(tool: Tool, **extra: str) -> dict[str, str]:
    env = tool.env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed amber has its bytecode cached
    return {**env, **extra}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall time, CPU time (user + sys) and stdout of one command; stops on failure."""
    start, cpu = time.perf_counter(), _cpu()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr[-2000:]}")
    return wall, _cpu() - cpu, out.stdout


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _catalog(tool: Tool) -> dict[str, float]:
    path = next((tool.state / "cache" / "amber").glob("*/catalog.sqlite"))
    conn = sqlite3.connect(path)
    versions = conn.execute("SELECT count(*) FROM ver").fetchone()[0]
    names = conn.execute("SELECT count(*) FROM name").fetchone()[0]
    conn.close()
    size = sum(os.path.getsize(p) for p in (str(path), f"{path}-wal") if os.path.exists(p))
    return {"versions": versions, "names": names, "bytes": size, "bytes_per_version": size / max(1, versions)}


def ingest(repo_path: str) -> None:
    """Run in the amber tool's environment: sync the catalog with the repository, print seconds."""
    from amber.catalog import store
    from amber.catalog.ingest import sync
    from amber.repository import open_repository
    from amber.storage import open_backend

    repo = open_repository(open_backend(repo_path), PASSWORD.encode())
    try:
        conn, _ = store.open_catalog(repo.id)
        start = time.perf_counter()
        result = sync(conn, repo)
        elapsed = time.perf_counter() - start
        conn.close()
    finally:
        repo.close()
    print(json.dumps({"sync_s": elapsed, "ingested": result.ingested, "failed": result.failed}))


def _snapshot_order(tool: Tool) -> dict[str, int]:
    """Snapshot ID (and each prefix tools print) -> its number, 1 = oldest."""
    _, _, out = _run([*tool.exe, "-r", str(tool.repo), "snapshots", "--json"], _env(tool))
    snaps = json.loads(out)
    if isinstance(snaps, dict):
        snaps = snaps.get("snapshots", [])
    snaps.sort(key=lambda s: s["time"])
    order: dict[str, int] = {}
    for i, s in enumerate(snaps, 1):
        order[s["id"]] = i
        order[s["id"][:8]] = i
    return order


def _matches(tool: Tool, stdout: str, order: dict[str, int]) -> set[tuple[int, str]]:
    if tool.name == "restic":
        groups = json.loads(stdout or "[]")
        return {(order[g["snapshot"]], m["path"]) for g in groups for m in g.get("matches", [])}
    out = set()
    for line in stdout.splitlines():
        hit = json.loads(line)
        out.add((order[hit["snapshot"]], hit["path"]))
    return out


def _find_cmd(tool: Tool, pattern: str, *extra: str) -> list[str]:
    if tool.name == "restic":
        return [*tool.exe, "-r", str(tool.repo), "find", "--json", pattern]
    return [*tool.exe, "-r", str(tool.repo), "find", pattern, "--json", *extra]


def finds(
    amber: Tool,
    restic: Tool,
    rounds: tuple[int, int],
    walk_mode: str,
    results: dict[str, object],
    save: object,
) -> None:
    orders = {t.name: _snapshot_order(t) for t in (amber, restic)}
    out: dict[str, dict[str, object]] = {}
    results["find"] = out
    results["find_load_start"] = _load()
    for label, pattern in PATTERNS.items():
        row: dict[str, object] = {"pattern": pattern}
        sets: dict[str, set[tuple[int, str]]] = {}
        for r in range(max(rounds)):
            pair = (amber, restic) if r % 2 == 0 else (restic, amber)
            for tool in (t for t in pair if r < rounds[t is restic]):
                wall, cpu, stdout = _run(_find_cmd(tool, pattern), _env(tool))
                row.setdefault(f"{tool.name}_s", []).append(wall)  # type: ignore[union-attr]
                row.setdefault(f"{tool.name}_cpu_s", []).append(cpu)  # type: ignore[union-attr]
                sets.setdefault(tool.name, _matches(tool, stdout, orders[tool.name]))
                print(
                    f"  {label} {tool.name}: {wall:.2f} s wall, {cpu:.2f} s CPU, load {_load()}", flush=True
                )
        if walk_mode == "all" or (walk_mode == "first" and label == next(iter(PATTERNS))):
            wall, cpu, stdout = _run(_find_cmd(amber, pattern, "--no-catalog"), _env(amber))
            row.update(amber_no_catalog_s=wall, amber_no_catalog_cpu_s=cpu)
            row["walk_equals_catalog"] = _matches(amber, stdout, orders["amber"]) == sets["amber"]
            print(f"  {label} amber --no-catalog: {wall:.2f} s", flush=True)
        for name in ("amber", "restic"):
            row[f"{name}_median_s"] = statistics.median(row[f"{name}_s"])  # type: ignore[arg-type]
            row[f"{name}_median_cpu_s"] = statistics.median(row[f"{name}_cpu_s"])  # type: ignore[arg-type]
        row.update(
            ratio=row["amber_median_s"] / row["restic_median_s"],  # type: ignore[operator]
            matches={name: len(s) for name, s in sets.items()},
            distinct_paths=len({p for _, p in sets["amber"]}),
            same_matches=sets["amber"] == sets["restic"],
        )  # fmt: skip
        if not row["same_matches"]:
            row["only_amber"] = sorted(sets["amber"] - sets["restic"])[:20]
            row["only_restic"] = sorted(sets["restic"] - sets["amber"])[:20]
        out[label] = row
        print(f"{label}: {json.dumps({k: v for k, v in row.items() if not k.endswith('_s')})}", flush=True)
        save()  # type: ignore[operator]
    results["find_load_end"] = _load()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=200_000)
    ap.add_argument("--snapshots", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--restic-rounds",
        type=int,
        default=None,
        help="Fewer restic finds than --rounds (each takes minutes at 100 snapshots).",
    )
    ap.add_argument("--workdir", type=Path, default=Path("/var/tmp/amber-catalogsame"))
    ap.add_argument(
        "--data",
        type=Path,
        default=Path("/dev/shm/catalogsame-data"),
        help="The tree both tools back up (tmpfs: other jobs' disk load stays out of the backups).",
    )
    ap.add_argument(
        "--walk",
        choices=("all", "first", "none"),
        default="all",
        help="Patterns to time `amber find --no-catalog` for.",
    )
    ap.add_argument("--finds-only", action="store_true")
    ap.add_argument("--ingest", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.ingest:
        ingest(args.ingest)
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    amber = Tool("amber", args.workdir, [sys.executable, "-m", "amber"])
    restic = Tool("restic", args.workdir)
    out_file = args.workdir / ("catalogsame-finds.json" if args.finds_only else "catalogsame.json")
    results: dict[str, object] = {"files": args.files, "snapshots": args.snapshots, "data": str(args.data)}
    results.update(restic=restic.version(), steps=[])

    def save() -> None:
        out_file.write_text(json.dumps(results, indent=1))

    if not args.finds_only:
        backups(args, amber, restic, results, save)
    results["catalog"] = _catalog(amber)
    rounds = (args.rounds, args.restic_rounds or args.rounds)
    results["rounds"] = {"amber": rounds[0], "restic": rounds[1]}
    finds(amber, restic, rounds, args.walk, results, save)
    save()
    print(f"figures in {out_file}")


def backups(
    args: argparse.Namespace, amber: Tool, restic: Tool, results: dict[str, object], save: object
) -> None:
    data = args.data
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    for tool in (amber, restic):
        tool.reset()
        _run(tool.init_cmd(), _env(tool))
    f = args.files  # per step: 4% added, 4% deleted, 4% renamed, 1% modified
    model = ChurnModel(f, adds=f // 25, deletes=f // 25, renames=f // 25, modifies=f // 100)
    state: dict[str, object] = {}
    steps: list[dict[str, object]] = results["steps"]  # type: ignore[assignment]
    for n in range(1, args.snapshots + 1):
        step: dict[str, object] = {"n": n, "load": _load()}
        t = time.perf_counter()
        if n > 1:
            model.step()
        new = model.paths()
        t2 = time.perf_counter()
        step["written"], step["removed"] = apply(data, state, new)  # type: ignore[arg-type]
        state = new  # type: ignore[assignment]
        step.update(
            files=len(new), distinct_paths=len(model.seen), model_s=t2 - t, write_s=time.perf_counter() - t2
        )
        for tool in (amber, restic) if n % 2 else (restic, amber):
            env = _env(tool, AMBER_CATALOG="off")  # amber's ingest is timed on its own below
            wall, cpu, _ = _run([*tool.exe, "-r", str(tool.repo), "backup", str(data)], env)
            step[f"{tool.name}_backup_s"], step[f"{tool.name}_backup_cpu_s"] = wall, cpu
        if n == 1:
            (amber.state / "cache" / "amber").mkdir(parents=True, exist_ok=True)
        _, _, out = _run([sys.executable, __file__, "--ingest", str(amber.repo)], _env(amber))
        step["ingest"] = json.loads(out)
        step["catalog"] = _catalog(amber)
        steps.append(step)
        print(json.dumps(step), flush=True)
        save()


if __name__ == "__main__":
    main()
