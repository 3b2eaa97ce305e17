"""Deterministic benchmark dataset generator.

The dataset is described by a *plan*: a list of :class:`FileSpec` entries, each
carrying the generator kind, the exact size and a per-file seed.  Every file's
content depends only on its spec, so generation is reproducible byte for byte
and any single file can be regenerated (used to undo :func:`mutate`).

Layout (fractions of the requested total size):

* ``src/``   ~50k small source-like text files per GiB (200 B .. 20 KiB,
  log-uniform), spread over a random, deep-ish tree (~1 dir per 30 files).
* ``logs/``  ~25 % compressible log files of ~25 MiB each.
* ``blobs/`` the remainder as a few large incompressible binaries.
* ``dup/``   duplicates: a copy of one large binary, one log file and ~3 % of
  the small files (placed in other directories).

Run ``python bench/dataset.py --help`` for the command-line interface.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

GIB = 1 << 30
MIB = 1 << 20
FORMAT_VERSION = 1
MARKER_NAME = "amber-bench-dataset.json"

SMALL_FILES_PER_GIB = 50_000
SMALL_MIN, SMALL_MAX = 200, 20_000
FILES_PER_DIR = 30
MAX_DEPTH = 8
LOG_FRACTION = 0.25
LOG_FILE_SIZE = 25 * MIB
BLOB_WEIGHTS = (3, 2, 2, 1)  # the last blob is also duplicated
SMALL_DUP_FRACTION = 0.03
WRITE_BLOCK = 8 * MIB

SOURCE_EXTS = (".py", ".c", ".h", ".js", ".ts", ".go", ".rs", ".java", ".md", ".txt")


@dataclass(frozen=True)
class FileSpec:
    """One file of the dataset. ``kind`` is ``text``, ``log`` or ``blob``."""

    path: str
    kind: str
    size: int
    seed: str
    dup_of: str | None = None


@dataclass
class Plan:
    """Full description of a dataset."""

    size_gb: float
    seed: int
    files: list[FileSpec] = field(default_factory=list)

    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def summary(self) -> dict[str, dict[str, int]]:
        """Count and bytes per kind (duplicates reported separately)."""
        out: dict[str, dict[str, int]] = {}
        for f in self.files:
            key = f"{f.kind}-dup" if f.dup_of else f.kind
            entry = out.setdefault(key, {"files": 0, "bytes": 0})
            entry["files"] += 1
            entry["bytes"] += f.size
        dirs = {os.path.dirname(f.path) for f in self.files}
        out["total"] = {"files": len(self.files), "bytes": self.total_bytes(), "dirs": len(dirs)}
        return out


# --------------------------------------------------------------------------- planning


def _syllable_word(rng: random.Random) -> str:
    syl = ("ka", "lo", "mi", "ne", "ru", "ta", "zo", "pe", "qu", "fi", "dan", "sel", "mor", "vin")
    return "".join(rng.choice(syl) for _ in range(rng.randint(2, 4)))


def _make_dirs(rng: random.Random, count: int) -> list[str]:
    dirs: list[tuple[str, int]] = [("src", 1)]
    for i in range(count - 1):
        parent, depth = rng.choice(dirs)
        if depth >= MAX_DEPTH:
            parent, depth = dirs[0]
        dirs.append((f"{parent}/{_syllable_word(rng)}_{i}", depth + 1))
    return [d for d, _ in dirs]


def _small_size(rng: random.Random) -> int:
    return int(math.exp(rng.uniform(math.log(SMALL_MIN), math.log(SMALL_MAX))))


def make_plan(size_gb: float, seed: int = 1) -> Plan:
    """Compute the deterministic plan for a dataset of ~``size_gb`` GiB."""
    rng = random.Random(f"plan:{seed}")
    total = int(size_gb * GIB)
    plan = Plan(size_gb=size_gb, seed=seed)
    n_small = max(100, round(SMALL_FILES_PER_GIB * size_gb))
    dirs = _make_dirs(rng, max(10, n_small // FILES_PER_DIR))
    small: list[FileSpec] = []
    for i in range(n_small):
        name = f"{_syllable_word(rng)}_{i}{rng.choice(SOURCE_EXTS)}"
        small.append(FileSpec(f"{rng.choice(dirs)}/{name}", "text", _small_size(rng), f"{seed}:t{i}"))
    plan.files.extend(small)
    for j, src in enumerate(rng.sample(small, max(1, int(len(small) * SMALL_DUP_FRACTION)))):
        dst = f"dup/{rng.choice(dirs)}/{j}_{os.path.basename(src.path)}"
        plan.files.append(FileSpec(dst, src.kind, src.size, src.seed, dup_of=src.path))

    log_budget = int(total * LOG_FRACTION)
    n_logs = max(2, round(log_budget / LOG_FILE_SIZE))
    log_size = log_budget // (n_logs + 1)  # +1: one log is duplicated
    logs = [FileSpec(f"logs/service-{i:02d}.log", "log", log_size, f"{seed}:l{i}") for i in range(n_logs)]
    plan.files.extend(logs)
    plan.files.append(
        FileSpec("dup/logs/service-00.log.1", "log", log_size, logs[0].seed, dup_of=logs[0].path)
    )

    blob_budget = max(total - plan.total_bytes(), len(BLOB_WEIGHTS) * MIB)
    unit = blob_budget // (sum(BLOB_WEIGHTS) + BLOB_WEIGHTS[-1])
    blobs = [
        FileSpec(f"blobs/image-{i}.bin", "blob", w * unit, f"{seed}:b{i}") for i, w in enumerate(BLOB_WEIGHTS)
    ]
    plan.files.extend(blobs)
    last = blobs[-1]
    plan.files.append(FileSpec("dup/blobs/image-copy.bin", "blob", last.size, last.seed, dup_of=last.path))
    return plan


# --------------------------------------------------------------------------- content


_KEYWORDS = (
    "def",
    "return",
    "if",
    "else",
    "for",
    "while",
    "class",
    "import",
    "const",
    "let",
    "fn",
    "struct",
)


def _line_pool(seed: str, n: int = 20_000) -> list[bytes]:
    rng = random.Random(f"pool:{seed}")
    words = [_syllable_word(rng) for _ in range(1500)]
    templates = (
        "{i}{k} {a}({b}, {c}):",
        "{i}{a} = {b}.{c}({n})",
        "{i}{a}.{b} = {c} + {n}",
        "{i}# {a} {b} {c} the {a} of {b}",
        "{i}{k} {a} in {b}:",
        "{i}return {a}({b}[{n}])",
        "{i}if ({a} != {b}) {{ {c}({n}); }}",
        '{i}log.debug("{a} {b}: %s", {c})',
        "",
    )
    pool = []
    for _ in range(n):
        t = rng.choice(templates)
        pool.append(
            t.format(
                i="    " * rng.randint(0, 3),
                k=rng.choice(_KEYWORDS),
                a=rng.choice(words),
                b=rng.choice(words),
                c=rng.choice(words),
                n=rng.randint(0, 4096),
            ).encode()
        )
    return pool


_POOLS: dict[str, list[bytes]] = {}


def _pool() -> list[bytes]:
    if "p" not in _POOLS:
        _POOLS["p"] = _line_pool("global")
    return _POOLS["p"]


def text_bytes(rng: random.Random, size: int) -> bytes:
    """Source-like text: lines from a small per-file vocabulary plus global ones."""
    pool = _pool()
    local = rng.sample(pool, 48)
    parts: list[bytes] = []
    length = 0
    while length < size:
        n = max(8, (size - length) // 30 + 1)
        chunk = [rng.choice(local) if rng.random() < 0.6 else rng.choice(pool) for _ in range(n)]
        blob = b"\n".join(chunk) + b"\n"
        parts.append(blob)
        length += len(blob)
    return b"".join(parts)[:size]


_LOG_MSGS = (
    "GET /api/v1/items/{n} status=200 dur={d}ms",
    "POST /api/v1/orders status=201 dur={d}ms user={u}",
    "cache miss key=item:{n}",
    "cache hit key=item:{n}",
    "connection pool size=32 active={a} idle={i}",
    "retrying request id={h} attempt={a}",
    "slow query took {d}ms: SELECT * FROM items WHERE id = {n}",
    "user {u} logged in from 10.0.{a}.{i}",
    "heartbeat ok",
    "flushed {n} records to disk",
)
_LEVELS = ("INFO", "INFO", "INFO", "DEBUG", "DEBUG", "WARN", "ERROR")


def log_lines(rng: random.Random, size: int) -> Iterator[bytes]:
    """Yield blocks of repetitive log lines, ``size`` bytes in total."""
    ts = 1_700_000_000_000 + rng.randint(0, 10**9)
    left = size
    while left > 0:
        lines = []
        for _ in range(2000):
            ts += rng.randint(1, 250)
            msg = rng.choice(_LOG_MSGS).format(
                n=rng.randint(1, 99_999),
                d=rng.randint(1, 900),
                u=f"user{rng.randint(1, 500)}",
                a=rng.randint(0, 31),
                i=rng.randint(0, 31),
                h=f"{rng.getrandbits(32):08x}",
            )
            lines.append(f"{ts // 1000}.{ts % 1000:03d} {rng.choice(_LEVELS):5s} [worker-{ts % 16}] {msg}\n")
        block = "".join(lines).encode()[:left]
        left -= len(block)
        yield block


def content_blocks(spec: FileSpec) -> Iterator[bytes]:
    """Yield the content of ``spec`` in blocks."""
    rng = random.Random(f"{spec.kind}:{spec.seed}")
    if spec.kind == "text":
        yield text_bytes(rng, spec.size)
    elif spec.kind == "log":
        yield from log_lines(rng, spec.size)
    elif spec.kind == "blob":
        left = spec.size
        while left > 0:
            n = min(WRITE_BLOCK, left)
            yield rng.randbytes(n)
            left -= n
    else:
        raise ValueError(f"unknown kind {spec.kind!r}")


def write_file(root: Path, spec: FileSpec) -> None:
    path = root / spec.path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        for block in content_blocks(spec):
            fh.write(block)


# ------------------------------------------------------------------ generate / mutate / reset


def _marker(root: Path) -> Path:
    return root.parent / f"{root.name}.{MARKER_NAME}"


def read_marker(root: Path) -> dict[str, object] | None:
    try:
        data: dict[str, object] = json.loads(_marker(root).read_text())
        return data
    except (OSError, ValueError):
        return None


def _write_marker(root: Path, data: dict[str, object]) -> None:
    _marker(root).write_text(json.dumps(data, indent=1))


def generate(root: Path, plan: Plan, progress: bool = True) -> None:
    """Write the whole dataset to ``root`` (wiped first)."""
    if root.exists():
        shutil.rmtree(root)
    _marker(root).unlink(missing_ok=True)
    root.mkdir(parents=True)
    for n, spec in enumerate(plan.files):
        if spec.dup_of is not None:
            dst = root / spec.path
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / spec.dup_of, dst)
        else:
            write_file(root, spec)
        if progress and n % 10_000 == 0:
            print(f"  dataset: {n}/{len(plan.files)} files", file=sys.stderr, flush=True)
    _write_marker(
        root,
        {
            "version": FORMAT_VERSION,
            "size_gb": plan.size_gb,
            "seed": plan.seed,
            "complete": True,
            "mutations": [],
        },
    )


@dataclass
class Mutation:
    """What :func:`mutate` changed (paths relative to the dataset root)."""

    seed: int
    modified: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    bytes_written: int = 0


def _all_files(root: Path) -> list[str]:
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        out.extend(os.path.normpath(os.path.join(rel, f)) for f in sorted(filenames))
    return out


def _mutate_file(path: Path, rng: random.Random, m: Mutation) -> None:
    size = path.stat().st_size
    is_text = path.suffix in SOURCE_EXTS or path.suffix in (".log", ".1")
    big = size > 4 * MIB
    n = (64 * 1024 if is_text else MIB) if big else rng.randint(16, 512)
    data = text_bytes(rng, n) if is_text else rng.randbytes(n)
    with open(path, "r+b") as fh:
        if rng.random() < 0.5 or size == 0:
            fh.seek(0, os.SEEK_END)  # append
        else:
            fh.seek(rng.randrange(0, max(1, size - n)))  # overwrite in place
        fh.write(data)
    m.modified.append(str(path))
    m.bytes_written += n


def mutate(root: Path | str, fraction: float = 0.01, seed: int = 7) -> Mutation:
    """Deterministically modify ~``fraction`` of the files under ``root``.

    Half of the touched files get bytes appended, half get a region
    overwritten.  One log and one large binary are always among them, and
    ``fraction / 10`` new small files are added.  Recorded in the marker so
    :func:`reset` can undo it.
    """
    root = Path(root)
    rng = random.Random(f"mutate:{seed}")
    files = _all_files(root)
    k = max(1, round(len(files) * fraction))
    chosen = set(rng.sample(files, k))
    for prefix in ("logs/", "blobs/"):
        candidates = [f for f in files if f.startswith(prefix)]
        if candidates and not chosen.intersection(candidates):
            chosen.add(rng.choice(candidates))
    m = Mutation(seed=seed)
    for rel in sorted(chosen):
        _mutate_file(root / rel, rng, m)
    m.modified = [os.path.relpath(p, root) for p in m.modified]
    dirs = sorted({os.path.dirname(f) for f in files if f.startswith("src/")}) or ["."]
    for i in range(max(1, k // 10)):
        rel = os.path.normpath(f"{rng.choice(dirs)}/new_{seed}_{i}.txt")
        size = _small_size(rng)
        (root / rel).write_bytes(text_bytes(rng, size))
        m.added.append(rel)
        m.bytes_written += size
    marker = read_marker(root) or {}
    muts = marker.get("mutations")
    marker["mutations"] = [*(muts if isinstance(muts, list) else []), asdict(m)]
    _write_marker(root, marker)
    return m


def reset(root: Path, plan: Plan) -> int:
    """Undo recorded mutations by regenerating touched files. Returns count."""
    marker = read_marker(root) or {}
    muts = marker.get("mutations")
    if not isinstance(muts, list) or not muts:
        return 0
    by_path = {f.path: f for f in plan.files}
    count = 0
    for mut in muts:
        for rel in mut["added"]:
            (root / rel).unlink(missing_ok=True)
            count += 1
        for rel in mut["modified"]:
            write_file(root, by_path[rel])
            count += 1
    marker["mutations"] = []
    _write_marker(root, marker)
    return count


def ensure(root: Path, size_gb: float, seed: int = 1) -> Plan:
    """Reuse the dataset at ``root`` if it matches, else (re)generate it."""
    plan = make_plan(size_gb, seed)
    m = read_marker(root)
    if (
        m is not None
        and m.get("complete")
        and m.get("version") == FORMAT_VERSION
        and m.get("size_gb") == size_gb
        and m.get("seed") == seed
        and root.is_dir()
    ):
        n = reset(root, plan)
        print(f"dataset: reusing {root} (reverted {n} mutated files)", file=sys.stderr)
    else:
        print(f"dataset: generating {plan.total_bytes() / GIB:.2f} GiB in {root}", file=sys.stderr)
        generate(root, plan)
    return plan


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", type=Path, help="dataset directory")
    p.add_argument("--size-gb", type=float, default=2.0, help="total size in GiB (default 2)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--mutate", action="store_true", help="mutate an existing dataset (~1%% of files)")
    p.add_argument("--reset", action="store_true", help="undo recorded mutations")
    args = p.parse_args(argv)
    if args.mutate:
        m = mutate(args.root, seed=args.seed)
        print(f"modified {len(m.modified)} files, added {len(m.added)}, wrote {m.bytes_written} bytes")
    elif args.reset:
        print(f"reverted {reset(args.root, make_plan(args.size_gb, args.seed))} files")
    else:
        plan = ensure(args.root, args.size_gb, args.seed)
        print(json.dumps(plan.summary(), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
