"""Benchmark the in-memory blob index: memory and speed, against a plain dict.

``table`` is amber's ``Index`` (a compact ``BlobTable``); ``dict`` is the former
design, a ``dict[bytes, int]`` with the same entry encoding, reproduced here as
the baseline. Each (kind, size) runs in a fresh subprocess, so the RSS delta
(VmRSS after building the index minus before) is not blurred by earlier runs;
tracemalloc is measured in a second subprocess (it slows everything down).

Loading is timed as ``add_rows`` over batches of 16,384 rows (one index file's
worth), like ``BlobStore.load_index``. Lookups time ``lookup`` of present IDs
(hit) and absent IDs (miss), and ``in`` on present IDs, over 200,000 IDs.
Timings are wall-clock on a possibly shared machine: compare the ratio column,
which is measured in the same run.

Usage: python bench/indexbench.py [--sizes 107000,1000000] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
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
    """Build an index of n blobs; seconds spent in add_rows only."""
    index: Index | DictIndex = Index() if kind == "table" else DictIndex()
    spent = 0.0
    for pack, rows in batches(n):
        t = time.perf_counter()
        index.add_rows(pack, rows)
        spent += time.perf_counter() - t
    return index, spent


def one(kind: str, n: int, trace: bool) -> dict[str, Any]:
    if trace:
        tracemalloc.start()
        index, _ = build(kind, n)
        size = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        return {"traced": size, "len": len(index) if isinstance(index, Index) else n}
    before = rss()
    index, add_s = build(kind, n)
    grown = rss() - before
    hits = [blob_id(i) for i in range(0, n, max(1, n // PROBES))][:PROBES]
    misses = [blob_id(i, b"miss") for i in range(len(hits))]
    lookup = index.lookup
    t = time.perf_counter()
    for b in hits:
        lookup(b)
    hit_s = time.perf_counter() - t
    t = time.perf_counter()
    for b in misses:
        lookup(b)
    miss_s = time.perf_counter() - t
    t = time.perf_counter()
    for b in hits:
        b in index  # noqa: B015
    in_s = time.perf_counter() - t
    assert all(index.lookup(b) is not None for b in hits[:1000])
    assert not any(b in index for b in misses[:1000])
    per = 1e9 / len(hits)
    return {
        "rss": grown, "add_ns": add_s * 1e9 / n, "hit_ns": hit_s * per,
        "miss_ns": miss_s * per, "in_ns": in_s * per,
    }  # fmt: skip


def measure(kind: str, n: int, trace: bool) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--one", kind, str(n)] + (["--trace"] if trace else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="107000,1000000")
    p.add_argument("--json", action="store_true")
    p.add_argument("--one", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    p.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), args.trace)))
        return 0
    results: list[dict[str, Any]] = []
    for n in (int(s) for s in args.sizes.split(",")):
        row: dict[str, Any] = {"n": n}
        for kind in ("dict", "table"):
            row[kind] = measure(kind, n, False) | measure(kind, n, True)
        results.append(row)
    if args.json:
        print(json.dumps(results))
        return 0
    mib = 1 << 20
    print(f"{'blobs':>9} {'figure':<14} {'dict':>10} {'table':>10} {'ratio':>6}")
    for row in results:
        d, t = row["dict"], row["table"]
        lines = [
            ("traced MiB", d["traced"] / mib, t["traced"] / mib, "{:10.1f}"),
            ("RSS MiB", d["rss"] / mib, t["rss"] / mib, "{:10.1f}"),
            ("B/blob traced", d["traced"] / row["n"], t["traced"] / row["n"], "{:10.0f}"),
            ("add_rows ns", d["add_ns"], t["add_ns"], "{:10.0f}"),
            ("lookup hit ns", d["hit_ns"], t["hit_ns"], "{:10.0f}"),
            ("lookup miss ns", d["miss_ns"], t["miss_ns"], "{:10.0f}"),
            ("in ns", d["in_ns"], t["in_ns"], "{:10.0f}"),
        ]
        for name, dv, tv, fmt in lines:
            print(f"{row['n']:>9} {name:<14} {fmt.format(dv)} {fmt.format(tv)} {tv / dv if dv else 0:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
