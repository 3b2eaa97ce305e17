"""amber's catalog query at 10M file versions, timed directly (no CLI, no restic).

    python bench/catalogquery.py [--files 2000000] [--snapshots 100] [--workdir W]

Ingesting 10M versions through amber's tree diff takes too long for a benchmark on
2 shared cores, so this fills a catalog of the current schema (store.py) with the
rows ingest would write for the synthetic model of bench/catalogmodel.py: ``--files``
files in directories of 1,000, one lineage, ``--snapshots`` snapshots, each rewriting
200 files in each of 2% of the directories (the default gives ~10M versions and
~1M distinct names). Rows are bulk-loaded in key order and the secondary indexes
built afterwards, so the file is as compact as a freshly rebuilt catalog.

Then it times :func:`amber.catalog.search.catalog_hits` (what `amber find` runs
once the catalog is in sync, minus printing) for the benchmark's patterns, median of
``--rounds``, each on a fresh connection, wall and CPU time (on a shared machine the
CPU time is the steadier figure), and reports the size per version.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from catalogmodel import CHANGES_PER_DIR, TreeModel

from amber.catalog import store
from amber.catalog.query import FindQuery, SizeBound
from amber.catalog.search import catalog_hits
from amber.catalog.versions import extension, fold_text, name_form

QUERIES = {
    "selective IMG_00424*": FindQuery(patterns=("IMG_00424*",)),
    "extension *.iso": FindQuery(patterns=("*.iso",)),
    "no literal a?b*": FindQuery(patterns=("a?b*",)),
    "ignore case img_00424*": FindQuery(patterns=("img_00424*",), ignore_case=True),
    "no literal, ignore case A?B*": FindQuery(patterns=("A?B*",), ignore_case=True),
    "selective + size > 150": FindQuery(patterns=("IMG_0042*",), sizes=(SizeBound("+", 150),)),
    # no name candidates: read through the size/date index (for the heavy-churn catalog of
    # bench/catalogingest.py, whose sizes reach 2047 and a few mtimes lie before mid-2023)
    "size only, * > 2040": FindQuery(patterns=("*",), sizes=(SizeBound("+", 2040),)),
    "date only, * older than 2023-07-17": FindQuery(patterns=("*",), older_ns=1_689_552_000 * 10**9),
}
_SECONDARY = ("ver_coarse",)
_DIR_ROW = "INSERT INTO stage.v VALUES (?, ?, 1, 1, 0, 0, 493, x'', 1, NULL)"


def build(path: Path, files: int, snapshots: int, dir_share: float, seed: int = 7) -> int:
    """Write the catalog; returns the number of versions."""
    store.drop("bench", path)
    conn, _ = store.open_catalog("bench", path)
    model = TreeModel(files, 0.0, seed)
    rng = random.Random(seed)
    marks = ", ".join("?" * len(_SECONDARY))
    schema = f"SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND name IN ({marks})"
    index_sql = dict(conn.execute(schema, _SECONDARY).fetchall())
    for name in _SECONDARY:
        conn.execute(f"DROP INDEX {name}")
    conn.execute("PRAGMA journal_mode = OFF")  # a benchmark file: built once, no crash safety needed
    conn.execute("BEGIN")
    conn.execute("INSERT INTO lineage(lid, host, paths) VALUES (1, 'bench', '[\"/bench/data\"]')")
    t0 = 1_767_236_400  # 2026-01-01T03:00Z
    conn.executemany(
        "INSERT INTO snap(snap_id, lid, seq, time, time_text, tags, tree) VALUES (?, 1, ?, ?, ?, '[]', x'')",
        [(f"{s:064x}", s, f"{(t0 + s * 86400) * 10**6 + 10**18:020d}",
          time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t0 + s * 86400)))
         for s in range(1, snapshots + 1)],
    )  # fmt: skip
    nids: dict[bytes, int] = {}

    def nid(raw: bytes) -> int:
        found = nids.get(raw)
        if found is None:
            row = (raw, extension(raw), name_form(raw))
            cur = conn.execute("INSERT INTO name(raw, ext, form) VALUES (?, ?, ?)", row)
            found = nids[raw] = int(cur.lastrowid or 0)
            conn.execute("INSERT INTO name_tri(rowid, fold) VALUES (?, ?)", (found, fold_text(raw)))
        return found

    def did(parent: int, name: bytes) -> int:
        cur = conn.execute("INSERT INTO dir(parent, nid) VALUES (?, ?)", (parent, nid(name)))
        return int(cur.lastrowid or 0)

    conn.execute("ATTACH ? AS stage", (str(path) + ".stage",))
    conn.execute("CREATE TABLE stage.v (nid, did, lid, kind, size, mtime, mode, sha256, first_seq, last_seq)")
    bench_did = did(0, b"bench")
    data_did = did(bench_did, b"data")
    tops: dict[bytes, int] = {}
    chosen_per_snapshot = max(1, int(len(model.dirs) * dir_share))
    churned: list[list[int]] = [[] for _ in model.dirs]  # per directory, the snapshots that change it
    for s in range(2, snapshots + 1):
        for d in rng.sample(range(len(model.dirs)), chosen_per_snapshot):
            churned[d].append(s)
    versions = 0
    for d, entries in enumerate(model.dirs):
        top, sub = model.dir_path(d)
        if top not in tops:
            tops[top] = did(data_did, top)
            conn.execute(_DIR_ROW, (nid(top), data_did))
        leaf = did(tops[top], sub)
        conn.execute(_DIR_ROW, (nid(sub), tops[top]))
        names = sorted(entries)
        starts: dict[bytes, list[int]] = {name: [1] for name in names}
        for s in churned[d]:
            for name in rng.sample(names, min(CHANGES_PER_DIR, len(names))):
                starts[name].append(s)
        rows = []
        for name in names:
            e = entries[name]
            seqs = starts[name]
            for k, first in enumerate(seqs):
                last = seqs[k + 1] - 1 if k + 1 < len(seqs) else None
                rows.append((nid(name), leaf, 0, rng.randrange(16, 200), e.mtime_ns + first * 10**9, 420,
                             rng.randbytes(32), first, last))  # fmt: skip
        conn.executemany("INSERT INTO stage.v VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, ?)", rows)
        versions += len(rows) + 1
    conn.execute("COMMIT")
    conn.execute("BEGIN")
    conn.execute("INSERT INTO ver SELECT * FROM stage.v ORDER BY nid, did, lid, first_seq")
    conn.execute("COMMIT")
    conn.execute("DETACH stage")
    os.unlink(str(path) + ".stage")
    for sql in index_sql.values():
        conn.execute(sql)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    return versions + len(tops)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=2_000_000)
    ap.add_argument("--snapshots", type=int, default=100)
    ap.add_argument("--dir-share", type=float, default=0.02, help="Directories each snapshot churns.")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workdir", type=Path, default=Path("/var/tmp/amber-catalogquery"))
    ap.add_argument("--reuse", action="store_true", help="Query an existing catalog instead of building one.")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    path = args.workdir / "catalog.sqlite"
    if not args.reuse:
        start = time.perf_counter()
        build(path, args.files, args.snapshots, args.dir_share)
        print(f"built in {time.perf_counter() - start:.0f} s", flush=True)
    conn, _ = store.open_catalog("bench", path)
    versions = conn.execute("SELECT count(*) FROM ver").fetchone()[0]
    names = conn.execute("SELECT count(*) FROM name").fetchone()[0]
    conn.close()
    size = os.path.getsize(path)
    results: dict[str, object] = {"versions": versions, "names": names, "bytes": size,
                                  "bytes_per_version": size / versions, "queries": {}}  # fmt: skip
    print(json.dumps(results), flush=True)
    for label, query in QUERIES.items():
        runs, cpu, hits = [], [], 0
        for _ in range(args.rounds):
            conn, _ = store.open_catalog("bench", path)
            start, start_cpu = time.perf_counter(), time.process_time()
            conn.execute("BEGIN")
            hits = sum(1 for _ in catalog_hits(conn, query))
            conn.execute("COMMIT")
            runs.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
            conn.close()
        median, median_cpu = statistics.median(runs), statistics.median(cpu)
        figures = {"median_s": median, "median_cpu_s": median_cpu, "runs_s": runs, "hits": hits}
        results["queries"][label] = figures  # type: ignore[index]
        shown = [round(r, 3) for r in runs]
        print(f"{label}: {median:.3f} s wall, {median_cpu:.3f} s CPU, {hits} (snapshot, path) hits,"
              f" runs {shown}", flush=True)  # fmt: skip
    (args.workdir / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
