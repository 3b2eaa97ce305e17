"""Full restore, amber vs restic, side by side: alternating rounds on repositories bench/run.py made.

Each round restores the latest snapshot with every tool into an empty directory,
page cache dropped first, tools alternating so that machine noise hits both.
Prints each run and the median wall time per tool and their ratio.

Usage: python bench/restorebench.py [--workdir DIR] [--rounds N] [--json OUT] [--fresh-fs GB]
(run ``python bench/run.py --skip borg --workdir DIR`` once first: it makes the repositories).

``--fresh-fs GB`` (root): each restore goes into a new ext4 filesystem (journal, inode
tables initialised, on a loop file in the workdir) instead of a directory on the
workdir's own filesystem. A restore onto a new disk is the disaster case; it also
keeps one run's deleted files from slowing the next (on ext4 without a journal,
creating files soon after ``rm -rf`` scans past the inodes just freed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import measure
from tools import Tool


def fresh_filesystem(image: Path, gb: float, mountpoint: Path) -> None:
    """A new, empty ext4 of ``gb`` GiB on ``image``, mounted at ``mountpoint``."""
    image.unlink(missing_ok=True)
    with image.open("wb") as f:
        f.truncate(int(gb * (1 << 30)))
    mkfs = ["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", str(image)]
    subprocess.run(mkfs, check=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mountpoint)], check=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=Path("/var/tmp/amber-bench"))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tools", default="amber,restic")
    p.add_argument("--json", type=Path, help="write the runs here")
    p.add_argument("--fresh-fs", type=float, default=0, metavar="GB", help="restore into a new ext4 (GiB)")
    args = p.parse_args(argv)
    amber = [sys.executable, "-m", "amber"]  # this interpreter, with whatever PYTHONPATH says
    tools = [Tool(name, args.workdir, amber if name == "amber" else []) for name in args.tools.split(",")]
    for tool in tools:
        if not tool.repo.is_dir():
            raise SystemExit(f"no {tool.name} repository at {tool.repo}: run bench/run.py first")
    walls: dict[str, list[float]] = {t.name: [] for t in tools}
    cpus: dict[str, list[float]] = {t.name: [] for t in tools}
    for n in range(args.rounds):
        order = tools if n % 2 == 0 else list(reversed(tools))
        for tool in order:
            target = args.workdir / "restore" / tool.name
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            if args.fresh_fs:
                fresh_filesystem(args.workdir / "restore-fs.img", args.fresh_fs, target)
            measure.drop_caches()
            cmd, cwd = tool.restore_cmd(target, 0)
            log = args.workdir / "logs" / f"{tool.name}-restorebench.log"
            m = measure.run_measured(cmd, tool.env(), log, cwd)
            if not m.ok:
                print(f"{tool.name} failed (exit {m.returncode}): {m.error}", file=sys.stderr)
                return 1
            walls[tool.name].append(m.wall_s)
            cpus[tool.name].append(m.cpu_s)
            print(f"[{time.strftime('%H:%M:%S')}] round {n + 1} {tool.name}: {m.wall_s:.2f}s wall, "
                  f"{m.cpu_s:.2f}s cpu", flush=True)  # fmt: skip
            if args.fresh_fs:
                subprocess.run(["umount", str(target)], check=True)
            shutil.rmtree(target, ignore_errors=True)
    medians = {name: statistics.median(w) for name, w in walls.items()}
    for name, med in medians.items():
        cpu = statistics.median(cpus[name])
        print(f"{name}: median {med:.2f}s wall, {cpu:.2f}s cpu over {args.rounds} rounds")
    if "amber" in medians and "restic" in medians:
        print(f"amber/restic: {medians['amber'] / medians['restic']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"wall_s": walls, "cpu_s": cpus}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
