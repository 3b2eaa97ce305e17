"""Unchanged re-backup, amber vs restic, repeated and interleaved.

``bench/run.py`` measures each phase once. The unchanged re-backup of ~100k
files takes a few seconds, so one run on a shared machine is mostly noise.
This script backs the dataset up once with each tool, then runs the unchanged
re-backup ``--rounds`` times, alternating the tools, and prints the minimum and
median of wall and CPU (user+sys) time and their amber/restic ratios. The
minimum is the better estimate of the cost when other processes compete for
the CPU; the CPU ratio is less sensitive to that competition than the wall ratio.

    python bench/rebackup.py --data /var/tmp/amber-bench/data --rounds 5 [--cold]

``--data`` defaults to a generated 2 GiB dataset (``bench/dataset.py``);
``--cold`` drops the page cache before every run (needs root), as run.py does.
amber's CPU time includes its metadata prewarm helper (engine/prewarm.py).

To compare another amber (before/after a change), point ``PYTHONPATH`` at that
checkout's ``src``: the amber command runs with it, restic is unaffected.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from dataset import ensure
from measure import Measurement, drop_caches, run_measured
from tools import Tool, ensure_installed

TOOLS = ("amber", "restic")


def _summary(runs: list[Measurement]) -> dict[str, float]:
    walls = [m.wall_s for m in runs]
    cpus = [m.cpu_s for m in runs]
    return {
        "wall_min": min(walls),
        "wall_med": statistics.median(walls),
        "cpu_min": min(cpus),
        "cpu_med": statistics.median(cpus),
        "rss_max_mib": max(m.max_rss_kib for m in runs) / 1024,
    }


def _run(tool: Tool, cmd: list[str], log: Path, cold: bool) -> Measurement:
    if cold and not drop_caches():
        raise SystemExit("--cold needs root (cannot write /proc/sys/vm/drop_caches)")
    m = run_measured(cmd, tool.env(), log)
    if not m.ok:
        raise SystemExit(f"{tool.name} failed (exit {m.returncode}):\n{m.error}")
    return m


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path("/var/tmp/amber-rebackup"))
    ap.add_argument("--data", type=Path, help="directory to back up (default: generated dataset)")
    ap.add_argument("--size-gb", type=float, default=2.0, help="size of the generated dataset")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cold", action="store_true", help="drop the page cache before each run")
    ap.add_argument("--keep", action="store_true", help="reuse repositories from an earlier run")
    args = ap.parse_args(argv)

    for note in ensure_installed(["restic"]):
        print(note)
    data = args.data or args.workdir / "data"
    if args.data is None:
        ensure(data, args.size_gb)
    tools = [Tool(name, args.workdir) for name in TOOLS]
    logs = args.workdir / "logs"
    for tool in tools:
        if not (args.keep and tool.repo.exists()):
            tool.reset()
            _run(tool, tool.init_cmd(), logs / f"{tool.name}-init.log", False)
            m = _run(tool, tool.backup_cmd(data, 1), logs / f"{tool.name}-initial.log", False)
            print(f"{tool.name}: initial backup {m.wall_s:.2f} s wall, {m.cpu_s:.2f} s CPU")
        _run(tool, tool.backup_cmd(data, 2), logs / f"{tool.name}-warmup.log", False)  # caches, atimes

    runs: dict[str, list[Measurement]] = {t.name: [] for t in tools}
    for n in range(args.rounds):
        for tool in tools:
            m = _run(tool, tool.backup_cmd(data, 3 + n), logs / f"{tool.name}-rebackup.log", args.cold)
            runs[tool.name].append(m)
            print(f"round {n + 1} {tool.name:6s} {m.wall_s:6.2f} s wall {m.cpu_s:6.2f} s CPU", flush=True)

    stats = {name: _summary(r) for name, r in runs.items()}
    print(f"\nunchanged re-backup of {data} ({'cold' if args.cold else 'warm'} cache, {args.rounds} rounds)")
    print(f"{'':8s}{'wall min':>10s}{'wall med':>10s}{'CPU min':>10s}{'CPU med':>10s}{'RSS MiB':>10s}")
    for name, s in stats.items():
        print(
            f"{name:8s}{s['wall_min']:10.2f}{s['wall_med']:10.2f}{s['cpu_min']:10.2f}{s['cpu_med']:10.2f}"
            f"{s['rss_max_mib']:10.1f}"
        )
    a, r = stats["amber"], stats["restic"]
    print(
        f"{'ratio':8s}{a['wall_min'] / r['wall_min']:9.2f}x{a['wall_med'] / r['wall_med']:9.2f}x"
        f"{a['cpu_min'] / r['cpu_min']:9.2f}x{a['cpu_med'] / r['cpu_med']:9.2f}x"
        f"{a['rss_max_mib'] / r['rss_max_mib']:9.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
