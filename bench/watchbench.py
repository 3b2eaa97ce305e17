"""`amber watch` vs a scheduled `amber run` after a small change in a large tree (issue 15 §3).

A tree of small files (default 100,000 in 1,000 directories) is backed up once.
Then one file is changed, ``--rounds`` times:

* run: ``amber run JOB`` walks every directory and compares every file's lstat
  with the parent (design §12): the cost grows with the tree;
* watch: a running ``amber watch JOB`` takes the snapshot itself, walking only
  the changed file's directories (design §12c): the cost grows with the change.

Reported per mode (median of the rounds): the archive time recorded in the
snapshot (``summary.duration_s``), and for watch the RPO it achieved (first change
until the snapshot was committed, from the state database) and the CPU the idle
watcher used between changes.

    python bench/watchbench.py                     # /var/tmp/amber-watchbench
    python bench/watchbench.py --files 20000 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

PASSWORD = "watchbench-password"


def amber_cmd() -> list[str]:
    local = Path(sys.executable).with_name("amber")
    if local.exists() and "PYTHONPATH" not in os.environ:
        return [str(local)]
    return [sys.executable, "-m", "amber"]


def make_tree(src: Path, files: int, dirs: int) -> None:
    shutil.rmtree(src, ignore_errors=True)
    per_dir = max(1, files // dirs)
    for d in range(dirs):
        folder = src / f"d{d // 30:03}" / f"e{d:04}"
        folder.mkdir(parents=True)
        for f in range(per_dir):
            (folder / f"f{f:03}.txt").write_text(f"file {d}/{f}\n" * 20)


def snapshots(env: dict[str, str], repo: Path) -> list[dict[str, object]]:
    out = subprocess.run([*amber_cmd(), "-r", str(repo), "snapshots", "--json"], env=env, capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    return list(json.loads(out))


def snapshot_files(repo: Path) -> int:
    """Snapshots stored, without starting a CLI (which would compete with the watcher for CPU)."""
    return sum(1 for name in os.listdir(repo / "snapshots") if not name.startswith("."))


def rpo_rows(state_db: Path) -> int:
    """Watched snapshots recorded as safe (the watcher writes the row once the run has ended)."""
    if not state_db.exists():
        return 0
    con = sqlite3.connect(state_db)
    try:
        return int(con.execute("SELECT count(*) FROM watch_rpo").fetchone()[0])
    except sqlite3.OperationalError:  # the table is not there yet
        return 0
    finally:
        con.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--dirs", type=int, default=1_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", default="/var/tmp/amber-watchbench")
    args = ap.parse_args()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    src, repo = work / "src", work / "repo"
    make_tree(src, args.files, args.dirs)
    env = {**os.environ, "AMBER_PASSWORD": PASSWORD, "XDG_CACHE_HOME": str(work / "cache"),
           "XDG_STATE_HOME": str(work / "state"), "XDG_CONFIG_HOME": str(work / "config")}  # fmt: skip
    subprocess.run([*amber_cmd(), "-r", str(repo), "init"], env=env, check=True, capture_output=True)
    (work / "pass").write_text(PASSWORD + "\n")
    cfg = work / "config.toml"
    cfg.write_text(f'[repositories.main]\nurl = "{repo}"\npassword_file = "{work / "pass"}"\n\n'
                   f'[jobs.w]\npaths = ["{src}"]\nwatch_interval = "1s"\n'
                   'check.enabled = false\n')  # fmt: skip
    run = [*amber_cmd(), "--config", str(cfg), "run", "w"]
    subprocess.run(run, env=env, check=True, capture_output=True)
    target = src / "d000" / "e0000" / "f000.txt"
    run_times, run_walls = [], []
    for i in range(args.rounds):
        target.write_text(f"run round {i}\n")
        start = time.monotonic()
        subprocess.run(run, env=env, check=True, capture_output=True)
        run_walls.append(time.monotonic() - start)
        run_times.append(float(snapshots(env, repo)[-1]["summary"]["duration_s"]))  # type: ignore[index]

    proc = subprocess.Popen([*amber_cmd(), "--config", str(cfg), "watch", "w", "--no-check"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    watch_times, idle_cpu = [], []
    state_db = work / "state" / "amber" / "state.db"
    try:
        count = snapshot_files(repo)
        while snapshot_files(repo) == count:  # the full walk at start
            time.sleep(0.5)
        for i in range(args.rounds):
            rows = rpo_rows(state_db)
            before = cpu_seconds(proc.pid)
            time.sleep(5)
            idle_cpu.append(cpu_seconds(proc.pid) - before)
            target.write_text(f"watch round {i}\n")
            while rpo_rows(state_db) == rows:  # polled cheaply: a CLI here would slow the watcher
                time.sleep(0.2)
            watch_times.append(float(snapshots(env, repo)[-1]["summary"]["duration_s"]))  # type: ignore[index]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    con = sqlite3.connect(work / "state" / "amber" / "state.db")
    rpos = [c - f for f, c in con.execute("SELECT first_change, committed FROM watch_rpo WHERE changed > 0")]
    con.close()
    med = statistics.median
    print(f"{args.files} files in {args.dirs} directories; one file changed per round; "
          f"median of {args.rounds}; 1-min load {os.getloadavg()[0]:.1f}\n")  # fmt: skip
    print("| mode | archive time (s) | whole command (s) | RPO achieved (s) | idle CPU over 5 s (s) |")
    print("|---|---|---|---|---|")
    print(f"| `amber run` (walks everything) | {med(run_times):.2f} | {med(run_walls):.2f} | — | — |")
    print(f"| `amber watch` (walks the change) | {med(watch_times):.3f} | — | {med(rpos):.2f} | "
          f"{med(idle_cpu):.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
