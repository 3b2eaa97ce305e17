"""How much does a running backup slow a foreground workload? (issue 5, section 10)

A foreground process compresses a block, writes it and fsyncs, in a loop, and
counts operations per second: first alone, then while amber backs up a
dataset with default settings, then with the low-priority settings
(``--nice 19 --ionice-class idle --threads 1``). The backup repeats (a fresh
repository each time, so every pass compresses and encrypts) for the whole
measuring window. Reports the slowdown of each phase against the baseline.

    python bench/impact.py                       # 1 GiB dataset in /var/tmp/amber-impact
    python bench/impact.py --size-gb 0.3 --seconds 10 --rounds 1   # quick look

The plan's target is a slowdown of at most 20% with the low-priority settings.
Numbers depend on the machine: on a shared or virtual machine, other load
shows up as noise; take the median of several rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dataset  # bench/ is not a package

PASSWORD = "impact-bench"
BLOCK = 256 * 1024
LOW = ["--nice", "19", "--ionice-class", "idle", "--threads", "1"]


def foreground(seconds: float, directory: str) -> None:
    """The foreground workload: compress, write, fsync. Prints ops/s as JSON."""
    data = os.urandom(BLOCK // 4) + bytes(range(256)) * (3 * BLOCK // 1024)  # 1/4 incompressible
    path = os.path.join(directory, f"fg-{os.getpid()}.dat")
    ops = 0
    deadline = time.monotonic() + seconds
    started = time.monotonic()
    with open(path, "wb") as f:
        while time.monotonic() < deadline:
            packed = zlib.compress(data, 6)
            f.seek(0)
            f.write(packed)
            f.flush()
            os.fsync(f.fileno())
            ops += 1
    os.remove(path)
    print(json.dumps({"ops": ops, "seconds": time.monotonic() - started}))


def amber_cmd() -> list[str]:
    local = Path(sys.executable).with_name("amber")
    return [str(local)] if local.exists() else [sys.executable, "-m", "amber"]


class BackupLoop:
    """Back up ``data`` again and again into fresh repositories until stopped."""

    def __init__(self, work: Path, data: Path, extra: list[str]) -> None:
        self.work, self.data, self.extra = work, data, extra
        self.stop = threading.Event()
        self.passes = 0
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._proc: subprocess.Popen[bytes] | None = None
        self.env = {**os.environ, "AMBER_PASSWORD": PASSWORD, "XDG_CACHE_HOME": str(work / "cache")}

    def _loop(self) -> None:
        while not self.stop.is_set():
            repo = self.work / "repo"
            shutil.rmtree(repo, ignore_errors=True)
            init = subprocess.run([*amber_cmd(), "-r", str(repo), "init"], env=self.env, capture_output=True)
            if init.returncode != 0:
                self.errors.append(init.stderr.decode(errors="replace").strip())
                return
            argv = [*amber_cmd(), "-r", str(repo), "backup", *self.extra, str(self.data)]
            self._proc = subprocess.Popen(argv, env=self.env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE)
            _, err = self._proc.communicate()
            if self._proc.returncode == 0:
                self.passes += 1
            elif not self.stop.is_set():
                self.errors.append(err.decode(errors="replace").strip())
                return

    def __enter__(self) -> BackupLoop:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
        self._thread.join(timeout=60)
        shutil.rmtree(self.work / "repo", ignore_errors=True)


def measure(seconds: float, scratch: Path) -> float:
    out = subprocess.run([sys.executable, __file__, "--foreground", str(seconds), "--scratch", str(scratch)],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    result = json.loads(out)
    return float(result["ops"] / result["seconds"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="/var/tmp/amber-impact")
    ap.add_argument("--size-gb", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, default=20.0, help="measuring window per phase")
    ap.add_argument("--warmup", type=float, default=3.0, help="backup head start before measuring")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--foreground", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--scratch", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.foreground is not None:
        foreground(args.foreground, args.scratch)
        return 0
    work = Path(args.workdir)
    scratch = work / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    dataset.ensure(data, args.size_gb)
    phases = {"alone": None, "backup (default)": [], "backup (nice 19, ionice idle, 1 thread)": LOW}
    rates: dict[str, list[float]] = {name: [] for name in phases}
    passes: dict[str, int] = {name: 0 for name in phases}
    for round_ in range(args.rounds):
        for name, extra in phases.items():
            if extra is None:
                rates[name].append(measure(args.seconds, scratch))
            else:
                with BackupLoop(work, data, extra) as loop:
                    time.sleep(args.warmup)
                    rates[name].append(measure(args.seconds, scratch))
                if loop.errors:
                    print(f"backup failed: {loop.errors[0]}", file=sys.stderr)
                    return 1
                passes[name] += loop.passes
            print(f"round {round_ + 1}: {name}: {rates[name][-1]:.1f} ops/s", file=sys.stderr)
    base = statistics.median(rates["alone"])
    report = {"cpus": os.cpu_count(), "size_gb": args.size_gb, "seconds": args.seconds, "rounds": args.rounds,
              "phases": {}}  # fmt: skip
    print(f"\n{'phase':44} {'ops/s (median)':>15} {'slowdown':>9} {'backups done':>13}")
    for name in phases:
        median = statistics.median(rates[name])
        slowdown = 100.0 * (1 - median / base)
        report["phases"][name] = {"ops_per_s": rates[name], "median": median, "slowdown_percent": slowdown,
                                  "backup_passes": passes[name]}  # fmt: skip
        print(f"{name:44} {median:15.1f} {slowdown:8.1f}% {passes[name]:13d}")
    (work / "impact.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
