"""Catalog ingest speed on a repository bench/catalogscale.py built (``--build-only``).

    python bench/catalogingest.py --workdir W [--first 1] [--upto N] [--one-by-one]

Opens the repository in ``W`` and builds a fresh catalog beside it (not the one amber
uses), first from the oldest ``--first`` snapshots, then the rest: the first step is
the full ingest of a tree, the second the incremental one (each snapshot diffed
against its lineage's previous one), in one sync or, with ``--one-by-one``, one sync
per snapshot as after each backup (so nothing one sync caches helps the next).
Reports wall and CPU time, versions written and the time per changed version, and
the catalog's bytes per version.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tools import PASSWORD

from amber.catalog import ingest, store
from amber.repository import open_repository
from amber.storage import open_backend


class _Prefix:
    """The repository, showing only its first ``count`` snapshots (by time)."""

    def __init__(self, repo: Any, names: list[str]) -> None:
        self._repo, self._names = repo, names

    def snapshot_names(self) -> list[str]:
        return self._names

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._repo, attr)


def _step(conn: Any, repo: Any, names: list[str], start_at: int, one_by_one: bool) -> dict[str, float]:
    """Sync up to ``names``: in one sync, or (``one_by_one``) one sync per snapshot from
    ``start_at`` on, as after each backup (nothing cached from one sync to the next)."""
    before = conn.execute("SELECT count(*) FROM ver").fetchone()[0]
    prefixes = [names[: i + 1] for i in range(start_at, len(names))] if one_by_one else [names]
    start, cpu = time.perf_counter(), time.process_time()
    ingested = 0
    for prefix in prefixes:
        result = ingest.sync(conn, _Prefix(repo, prefix))
        if result.failed:
            raise SystemExit(f"ingest failed: {result.failed[:3]}")
        ingested += result.ingested
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    added = conn.execute("SELECT count(*) FROM ver").fetchone()[0] - before
    return {"snapshots": ingested, "wall_s": wall, "cpu_s": cpu, "versions_added": added,
            "us_per_version": 1e6 * wall / max(1, added), "cpu_us_per_version": 1e6 * cpu / max(1, added),
            "wall_s_per_snapshot": wall / max(1, ingested),
            "cpu_s_per_snapshot": cpu / max(1, ingested)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--first", type=int, default=1)
    ap.add_argument("--upto", type=int, default=0, help="Ingest only this many snapshots (0: all).")
    ap.add_argument(
        "--one-by-one",
        action="store_true",
        help="Sync the rest one snapshot at a time, as after each backup (default: one sync).",
    )
    args = ap.parse_args()
    repo_dir = next((args.workdir / "repos").iterdir())
    repo = open_repository(open_backend(str(repo_dir)), PASSWORD.encode())
    names = sorted(repo.snapshot_names(), key=lambda sid: repo.load_snapshot(sid).time)
    if args.upto:
        names = names[: args.upto]
    path = args.workdir / "ingest-bench.sqlite"
    store.drop("bench", path)
    conn, _ = store.open_catalog("bench", path)
    results = {"first": _step(conn, repo, names[: args.first], 0, False)}
    results["rest"] = _step(conn, repo, names, args.first, args.one_by_one)
    conn.close()
    size = sum(os.path.getsize(p) for p in (str(path), f"{path}-wal") if os.path.exists(p))
    conn, _ = store.open_catalog("bench", path)
    versions = conn.execute("SELECT count(*) FROM ver").fetchone()[0]
    conn.close()
    results["catalog"] = {"versions": versions, "bytes": size, "bytes_per_version": size / max(1, versions)}
    print(json.dumps(results, indent=2), flush=True)
    repo.close()


if __name__ == "__main__":
    main()
