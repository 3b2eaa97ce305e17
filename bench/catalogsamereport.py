"""Markdown figures from what bench/catalogsame.py wrote.

python bench/catalogsamereport.py /var/tmp/amber-catalogsame/catalogsame.json
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

HEADER = (
    "| pattern | matches (snapshot, path) | amber (catalog) | amber CPU | restic | restic CPU | ratio "
    "| amber `--no-catalog` | same matches |\n|---|---|---|---|---|---|---|---|---|"
)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def backups(steps: list[dict[str, Any]]) -> list[str]:
    first, last, later = steps[0], steps[-1], steps[1:]
    cat = last["catalog"]
    lines = [
        f"{len(steps)} snapshots per tool; {last['files']:,} files in the last; {last['distinct_paths']:,} "
        f"distinct paths over all; {cat['versions']:,} versions in amber's catalog"
    ]
    for key, label in (
        ("restic_backup_s", "restic backup"),
        ("amber_backup_s", "amber backup (catalog off)"),
    ):
        lines.append(
            f"- {label}: first {first[key]:.1f} s, then median {_median([s[key] for s in later]):.1f} s"
        )
    syncs = [s["ingest"]["sync_s"] for s in later]
    new = [b["catalog"]["versions"] - a["catalog"]["versions"] for a, b in zip(steps, later, strict=False)]
    share = _median([s["ingest"]["sync_s"] / s["amber_backup_s"] for s in later])
    lines += [
        f"- catalog ingest: first {first['ingest']['sync_s']:.1f} s; then median {_median(syncs):.2f} s "
        f"for a median {_median(new):,.0f} new versions ({1e6 * sum(syncs) / max(1, sum(new)):.0f} µs each); "
        f"ingest / amber backup: median {share:.2f}",
        f"- catalog after the last sync: {cat['bytes'] / 1e6:.0f} MB, {cat['bytes_per_version']:.0f} bytes "
        f"per version, {cat['names']:,} names",
        f"- load average (1, 5, 15 min) at the first step {first['load']}, at the last {last['load']}",
    ]
    return lines


def finds(rows: dict[str, dict[str, Any]]) -> list[str]:
    lines = [HEADER]
    for label, row in rows.items():
        walk = row.get("amber_no_catalog_s")
        lines.append(
            f"| `{row['pattern']}` ({label}) | {row['matches']['amber']:,} ({row['distinct_paths']:,} paths) "
            f"| {row['amber_median_s']:.2f} s | {row['amber_median_cpu_s']:.2f} s "
            f"| {row['restic_median_s']:.1f} s | {row['restic_median_cpu_s']:.1f} s "
            f"| **{row['ratio']:.4f}x** "
            f"| {f'{walk:.1f} s' if walk else 'not run'} | {'yes' if row['same_matches'] else 'NO'} |"
        )
    return lines


def report(results: dict[str, Any]) -> str:
    lines = backups(results["steps"]) if results.get("steps") else []
    if results.get("find"):
        lines += ["", *finds(results["find"])]
        lines.append(
            f"\nload during the finds: {results.get('find_load_start')} -> {results.get('find_load_end')}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(json.loads(Path(sys.argv[1]).read_text())))
