"""Catalog ingest speed on a repository bench/catalogscale.py built (``--build-only``).

    python bench/catalogingest.py --workdir W [--first 1] [--rounds 1]

Opens the repository in ``W`` and builds a fresh catalog beside it (not the one amber
uses), first from the oldest ``--first`` snapshots, then the rest: the first step is
the full ingest of a tree, the second the incremental one (each snapshot diffed
against its lineage's previous one). Reports wall and CPU time, versions written and
the time per changed version, and the catalog's bytes per version.
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


def _step(conn: Any, repo: Any, names: list[str]) -> dict[str, float]:
    before = conn.execute("SELECT count(*) FROM ver").fetchone()[0]
    start, cpu = time.perf_counter(), time.process_time()
    result = ingest.sync(conn, _Prefix(repo, names))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    added = conn.execute("SELECT count(*) FROM ver").fetchone()[0] - before
    if result.failed:
        raise SystemExit(f"ingest failed: {result.failed[:3]}")
    return {"snapshots": result.ingested, "wall_s": wall, "cpu_s": cpu, "versions_added": added,
            "us_per_version": 1e6 * wall / max(1, added)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--first", type=int, default=1)
    ap.add_argument("--upto", type=int, default=0, help="Ingest only this many snapshots (0: all).")
    args = ap.parse_args()
    repo_dir = next((args.workdir / "repos").iterdir())
    repo = open_repository(open_backend(str(repo_dir)), PASSWORD.encode())
    names = sorted(repo.snapshot_names(), key=lambda sid: repo.load_snapshot(sid).time)
    if args.upto:
        names = names[: args.upto]
    path = args.workdir / "ingest-bench.sqlite"
    store.drop("bench", path)
    conn, _ = store.open_catalog("bench", path)
    results = {"first": _step(conn, repo, names[: args.first])}
    results["rest"] = _step(conn, repo, names)
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
