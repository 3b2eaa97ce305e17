"""Benchmark `amber copy` between two local repositories (target: >= 200 MB/s).

Backs up a dataset (the shared /var/tmp/amber-bench/data if present, else a
generated ~1 GiB one) into repository A, then times `amber copy` of that
snapshot into a new repository B with a different password (so every blob is
decrypted, re-hashed, re-encrypted), then a second copy (nothing to do), then
an incremental copy after ~1 % of files changed (own dataset only). Then the
same first copy into repository C, created with `init --copy-chunker-params`
(shared blob IDs and chunker, own encryption key): no re-hashing, trees copied
as they are.
MB/s = snapshot bytes (plaintext) / wall time of the copy command (started after
a sync, with the source in the page cache as a backup just left it). On a shared
machine wall time is noisy, so the CPU time of the copy command (user + sys, per
GB of plaintext) and the 1-minute load average when it started are reported too.

Usage: python bench/copybench.py [--workdir DIR] [--size-gb N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dataset
from tools import amber_command

SHARED_DATA = Path("/var/tmp/amber-bench/data")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    elapsed, _, out = run_cpu(args, env)
    return elapsed, out


def run_cpu(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + sys) and stdout of one amber command."""
    cpu = _children_cpu()
    started = time.perf_counter()
    proc = subprocess.run([*amber_command(), *args], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"amber {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return elapsed, _children_cpu() - cpu, proc.stdout


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=Path("/var/tmp/amber-bench-copy"))
    p.add_argument("--size-gb", type=float, default=1.0, help="size of a generated dataset (default 1)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    shared = dataset.read_marker(SHARED_DATA)
    own = not (shared and shared.get("complete"))
    data = args.workdir / "data" if own else SHARED_DATA
    if own:
        dataset.ensure(data, args.size_gb)
    repo_a, repo_b, repo_c = args.workdir / "repo-a", args.workdir / "repo-b", args.workdir / "repo-c"
    for repo in (repo_a, repo_b, repo_c):
        shutil.rmtree(repo, ignore_errors=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith("AMBER_")}
    env_a = {**base, "AMBER_PASSWORD": "bench-a", "AMBER_REPOSITORY": str(repo_a)}
    env_b = {**base, "AMBER_PASSWORD": "bench-b", "AMBER_REPOSITORY": str(repo_b)}
    env_c = {**base, "AMBER_PASSWORD": "bench-c", "AMBER_REPOSITORY": str(repo_c)}
    pw_a = args.workdir / "a.pw"
    pw_a.write_text("bench-a")
    run(["init"], env_a)
    run(["init"], env_b)
    backup_s, out = run(["backup", "--json", str(data)], env_a)
    summary = [json.loads(line) for line in out.splitlines() if line.startswith("{")][-1]
    total = int(summary.get("total_bytes_processed", 0) or summary.get("total_bytes", 0))
    copy = ["copy", "--from", str(repo_a), "--from-password-file", str(pw_a)]
    results: dict[str, Any] = {"dataset": str(data), "bytes": total, "backup_s": round(backup_s, 2)}
    os.sync()  # the backup's dirty pages would otherwise be flushed by the copy's fsyncs
    results["load_1m"] = round(os.getloadavg()[0], 2)
    first, cpu, _ = run_cpu(copy, env_b)
    results["copy_s"] = round(first, 2)
    results["copy_MBps"] = round(total / first / 1e6, 1)
    results["copy_cpu_s"] = round(cpu, 2)
    results["copy_cpu_s_per_GB"] = round(cpu / (total / 1e9), 2) if total else 0.0
    again, _ = run(copy, env_b)
    results["recopy_noop_s"] = round(again, 2)
    if own:
        dataset.mutate(data, 0.01)
        run(["backup", str(data)], env_a)
        incr, _ = run(copy, env_b)
        results["incremental_copy_s"] = round(incr, 2)
        dataset.reset(data, dataset.make_plan(args.size_gb))
    check_s, _ = run(["check", "--read-data"], env_b)
    results["check_read_data_b_s"] = round(check_s, 2)
    shared_init = ["--copy-chunker-params", "--from-repo", str(repo_a), "--from-password-file", str(pw_a)]
    run(["init", *shared_init], env_c)
    os.sync()
    shared, cpu, _ = run_cpu(copy, env_c)
    results["shared_ids_copy_s"] = round(shared, 2)
    results["shared_ids_copy_MBps"] = round(total / shared / 1e6, 1)
    results["shared_ids_copy_cpu_s_per_GB"] = round(cpu / (total / 1e9), 2) if total else 0.0
    if args.json:
        print(json.dumps(results))
    else:
        for key, value in results.items():
            print(f"{key:>22}: {value}")
    target = 200.0
    print(
        f"copy throughput {results['copy_MBps']} MB/s, {results['shared_ids_copy_MBps']} MB/s with shared"
        f" chunker params (target >= {target})", file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
