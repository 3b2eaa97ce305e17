"""Benchmark the in-memory blob index: memory and speed, against a plain dict.

``table`` is amber's ``Index`` (a compact ``BlobTable``); ``dict`` is the former
design, a ``dict[bytes, int]`` with the same entry encoding, reproduced here as
the baseline. Memory is measured for each (kind, size) in a fresh subprocess:
the growth of VmRSS while building (which includes allocator slack and the
rows of the batch being added), and, in another, what tracemalloc counts.

Loading is timed as ``add_rows`` over batches of 16,384 rows (one index file's
worth, 100 rows per pack), like loading index files. Lookups time ``lookup`` of
present IDs (hit) and absent IDs (miss), and ``in`` on present IDs, over up to
200,000 IDs in a shuffled order (in insertion order a dict's keys are adjacent
in memory, which flatters it). Timings are CPU time of the measuring thread,
best of several rounds in which the kinds alternate (in one process), so other
processes on a shared machine disturb them less.

Usage: python bench/indexbench.py [--sizes 107000,1000000] [--kinds dict,table] [--no-trace] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

from amber.repository.index import Index, Location
from amber.repository.pack import BlobType

BATCH = 16_384
PROBES = 200_000
BLOBS_PER_PACK = 100


_MASK = (1 << 48) - 1


def _encode_entry(pack_no: int, type_: int, offset: int, length: int, raw_length: int) -> int:
    """The former entry encoding: one int of fixed-width fields."""
    if max(offset, length, raw_length) > _MASK:
        raise ValueError("index entry out of range")
    return pack_no << 146 | offset << 98 | length << 50 | raw_length << 2 | type_


class DictIndex:
    """The former design: ``dict[bytes, int]``, same entry encoding and Location."""

    def __init__(self) -> None:
        self._entries: dict[bytes, int] = {}
        self._pack_names: list[str] = []
        self._pack_numbers: dict[str, int] = {}
        self._duplicates: list[tuple[bytes, int]] = []
        self._pack_blobs: dict[int, int] = {}

    def __contains__(self, blob_id: object) -> bool:
        return blob_id in self._entries

    def _pack_number(self, pack: str) -> int:
        n = self._pack_numbers.get(pack)
        if n is None:
            n = len(self._pack_names)
            self._pack_names.append(pack)
            self._pack_numbers[pack] = n
        return n

    def add_rows(self, pack: str, rows: list[tuple[int, bytes, int, int, int]]) -> None:
        n = self._pack_number(pack)
        entries = self._entries
        count = 0
        for type_, blob_id, offset, length, raw_length in rows:
            if blob_id not in entries:
                entries[blob_id] = _encode_entry(n, type_, offset, length, raw_length)
            else:
                self._duplicates.append((blob_id, _encode_entry(n, type_, offset, length, raw_length)))
            count += 1
        self._pack_blobs[n] = self._pack_blobs.get(n, 0) + count

    def lookup(self, blob_id: bytes) -> Location | None:
        e = self._entries.get(blob_id)
        if e is None:
            return None
        return Location(
            self._pack_names[e >> 146],
            (e >> 98) & _MASK,
            (e >> 50) & _MASK,
            (e >> 2) & _MASK,
            BlobType(e & 1),
        )


def blob_id(i: int, salt: bytes = b"") -> bytes:
    return hashlib.blake2b(i.to_bytes(8, "little") + salt, digest_size=32).digest()


def batches(n: int) -> Iterator[tuple[str, list[tuple[int, bytes, int, int, int]]]]:
    """Index-file-like rows, one pack per BLOBS_PER_PACK blobs, in batches of BATCH rows."""
    for start in range(0, n, BATCH):
        rows = [
            (i % 2, blob_id(i), (i % BLOBS_PER_PACK) * 300_000, 300_000, 400_000)
            for i in range(start, min(n, start + BATCH))
        ]
        for p in range(0, len(rows), BLOBS_PER_PACK):
            yield f"{(start + p) // BLOBS_PER_PACK:064x}", rows[p : p + BLOBS_PER_PACK]


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def build(kind: str, n: int) -> tuple[Index | DictIndex, float]:
    """Build an index of n blobs; CPU seconds spent in add_rows only."""
    index: Index | DictIndex = Index() if kind == "table" else DictIndex()
    spent = 0.0
    for pack, rows in batches(n):
        t = time.thread_time()
        index.add_rows(pack, rows)
        spent += time.thread_time() - t
    return index, spent


def memory(kind: str, n: int, trace: bool) -> dict[str, Any]:
    """Bytes the index holds: traced by tracemalloc, or the growth of VmRSS."""
    if trace:
        tracemalloc.start()
        _index = build(kind, n)
        size = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        return {"traced": size}
    before = rss()
    _index = build(kind, n)
    return {"rss": rss() - before}


def timing(kinds: list[str], n: int, rounds: int) -> dict[str, dict[str, float]]:
    """ns per add_rows row, lookup hit, lookup miss and ``in``; the kinds alternate, best of ``rounds``."""
    hits = [blob_id(i) for i in random.Random(n).sample(range(n), min(n, PROBES))]
    misses = [blob_id(i, b"miss") for i in range(len(hits))]
    indexes: dict[str, Index | DictIndex] = {}
    best: dict[str, dict[str, float]] = {k: {} for k in kinds}

    def keep(kind: str, figure: str, seconds: float, count: int) -> None:
        ns = seconds * 1e9 / count
        best[kind][figure] = min(best[kind].get(figure, ns), ns)

    for kind in kinds:
        indexes[kind], spent = build(kind, n)
        keep(kind, "add_ns", spent, n)
        assert all(indexes[kind].lookup(b) is not None for b in hits[:1000])
        assert not any(b in indexes[kind] for b in misses[:1000])
    for _ in range(rounds):
        for kind, index in indexes.items():
            lookup = index.lookup
            t0 = time.thread_time()
            for b in hits:
                lookup(b)
            t1 = time.thread_time()
            for b in misses:
                lookup(b)
            t2 = time.thread_time()
            for b in hits:
                b in index  # noqa: B015
            t3 = time.thread_time()
            keep(kind, "hit_ns", t1 - t0, len(hits))
            keep(kind, "miss_ns", t2 - t1, len(hits))
            keep(kind, "in_ns", t3 - t2, len(hits))
    return best


def subprocess_json(*args: str) -> Any:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="107000,1000000")
    p.add_argument("--kinds", default="dict,table", help="dict (the former design), table (amber's)")
    p.add_argument("--no-trace", action="store_true", help="skip the tracemalloc runs (slow at 10M)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--rounds", type=int, default=5, help="timing rounds, best kept (default 5)")
    p.add_argument("--memory", nargs=3, metavar=("KIND", "N", "TRACE"), help=argparse.SUPPRESS)
    p.add_argument("--timing", nargs=3, metavar=("KINDS", "N", "ROUNDS"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.memory:
        print(json.dumps(memory(args.memory[0], int(args.memory[1]), args.memory[2] == "1")))
        return 0
    if args.timing:
        print(json.dumps(timing(args.timing[0].split(","), int(args.timing[1]), int(args.timing[2]))))
        return 0
    kinds = args.kinds.split(",")
    results: list[dict[str, Any]] = []
    for n in (int(s) for s in args.sizes.split(",")):
        row: dict[str, Any] = {
            "n": n,
            **subprocess_json("--timing", ",".join(kinds), str(n), str(args.rounds)),
        }
        for kind in kinds:  # each in a fresh process, so earlier runs do not blur the RSS
            row[kind] |= subprocess_json("--memory", kind, str(n), "0")
            if not args.no_trace:
                row[kind] |= subprocess_json("--memory", kind, str(n), "1")
        results.append(row)
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"load average {os.getloadavg()[0]:.2f}; ratio = table / dict")
    print(
        f"{'blobs':>9} {'figure':<14}"
        + "".join(f" {k:>10}" for k in kinds)
        + (" {:>6}".format("ratio") if len(kinds) == 2 else "")
    )
    for row in results:
        figures = [
            ("traced MiB", "traced", 1 / (1 << 20), "{:10.1f}"),
            ("RSS MiB", "rss", 1 / (1 << 20), "{:10.1f}"),
            ("B/blob traced", "traced", 1 / row["n"], "{:10.0f}"),
            ("add_rows ns", "add_ns", 1, "{:10.0f}"),
            ("lookup hit ns", "hit_ns", 1, "{:10.0f}"),
            ("lookup miss ns", "miss_ns", 1, "{:10.0f}"),
            ("in ns", "in_ns", 1, "{:10.0f}"),
        ]
        for name, key, scale, fmt in figures:
            if key not in row[kinds[0]]:
                continue
            values = [row[k][key] * scale for k in kinds]
            line = f"{row['n']:>9} {name:<14}" + "".join(" " + fmt.format(v) for v in values)
            if len(kinds) == 2:
                line += f" {values[1] / values[0] if values[0] else 0:6.2f}"
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
