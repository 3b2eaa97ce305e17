"""`amber mount` vs `restic mount`: list a 10k-entry directory, read 1,000 small files.

    python bench/mountbench.py [--files 10000] [--reads 1000] [--workdir /var/tmp/amber-mountbench]

Both tools back up the same directory of small files, then each mount is timed for:
listing the directory with every entry's attributes (``ls -l``), the same again
(the tools' caches are warm), reading the first ``--reads`` files (open, read,
close; names listed beforehand) and reading them again. Each tool is mounted
``--rounds`` times and the medians are shown. bench/fusenoop.py gives the floor: the
same reads from a Python FUSE file system that does nothing. Needs FUSE
(/dev/fuse, fuse3) and restic on PATH. Figures go to stdout; nothing is asserted.
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.tools import Tool


def _dataset(root: Path, files: int) -> Path:
    src = root / "data" / "many"
    if src.is_dir() and len(os.listdir(src)) == files:
        return src
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    rng = random.Random(1)
    for i in range(files):
        (src / f"file-{i:05d}.txt").write_bytes(rng.randbytes(rng.randint(200, 4000)))
    return src


def _run(tool: Tool, *args: str) -> None:
    cmd = [*tool.exe, "-r", str(tool.repo), *args]
    subprocess.run(cmd, env=tool.env(), check=True, capture_output=True)


def _mount(tool: Tool, mountpoint: Path) -> subprocess.Popen[bytes]:
    mountpoint.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([*tool.exe, "-r", str(tool.repo), "mount", str(mountpoint)], env=tool.env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (mountpoint / "snapshots").is_dir():
        if proc.poll() is not None or time.monotonic() > deadline:
            why = proc.stderr.read().decode() if proc.stderr else ""
            raise SystemExit(f"{tool.name} mount failed: {why}")
        time.sleep(0.05)
    return proc


def _unmount(mountpoint: Path, proc: subprocess.Popen[bytes]) -> None:
    subprocess.run(["fusermount3", "-u", str(mountpoint)], check=False, capture_output=True)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _listing(directory: Path) -> int:
    return sum(1 for entry in os.scandir(directory) if entry.stat(follow_symlinks=False))


def _reads(directory: Path, names: list[str]) -> int:
    total = 0
    for name in names:
        with open(directory / name, "rb") as f:
            total += len(f.read())
    return total


def bench(tool: Tool, src: Path, reads: int, rounds: int) -> dict[str, float]:
    """Median over ``rounds`` fresh mounts of the repository (backed up once)."""
    tool.reset()
    _run(tool, "init")
    _run(tool, "backup", str(src))
    mountpoint = tool.workdir / "mnt" / tool.name
    names = sorted(os.listdir(src))[:reads]
    runs: dict[str, list[float]] = {}
    for _ in range(rounds):
        proc = _mount(tool, mountpoint)
        try:
            inside = mountpoint / "snapshots" / "latest" / str(src).lstrip("/")
            listing = functools.partial(_listing, inside)
            reading = functools.partial(_reads, inside, names)
            figures = {
                "ls -l (first)": _timed(listing),
                "ls -l (again)": _timed(listing),
                f"read {reads} files": _timed(reading),
                f"read {reads} again": _timed(reading),
            }
        finally:
            _unmount(mountpoint, proc)
        for key, value in figures.items():
            runs.setdefault(key, []).append(value)
    return {key: statistics.median(values) for key, values in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--reads", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=5, help="Fresh mounts per tool; medians are shown.")
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp/amber-mountbench"))
    args = parser.parse_args()
    src = _dataset(args.workdir, args.files)
    tools = ("amber", "restic")
    # amber as `python -m amber`: the code this interpreter imports, whatever console script is installed
    exe = {"amber": [sys.executable, "-m", "amber"], "restic": ["restic"]}
    results = {n: bench(Tool(n, args.workdir, exe[n]), src, args.reads, args.rounds) for n in tools}
    print(f"{args.files} files in one directory; times in seconds, medians of {args.rounds} mounts")
    print(f"{'':<22}{'amber':>10}{'restic':>10}{'ratio':>8}")
    for key in results["amber"]:
        a, r = results["amber"][key], results["restic"][key]
        print(f"{key:<22}{a:>10.3f}{r:>10.3f}{a / r:>8.2f}")


if __name__ == "__main__":
    main()
