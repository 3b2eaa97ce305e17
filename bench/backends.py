"""Backup to remote backends over loopback vs. local disk (issue 4, §7 first target).

    python bench/backends.py [--size-gb 0.3] [--runs 1] [--targets local,sftp,s3,rest]

Generates (once) a deterministic dataset (bench/dataset.py), starts the same
loopback servers the tests use (tests/storage/servers.py: OpenSSH sshd, moto's
S3 server, rclone serve restic), then times ``amber init`` + a first ``amber backup``
of the dataset into each target with the real CLI. The page cache is warmed
first, so every target reads the source equally fast. Reports seconds, MB/s and
the ratio to local (target: sftp and s3 within 1.5x).

moto is a Python (werkzeug) server that keeps objects in memory: it is much
slower than a real S3 service or MinIO, so the s3 figure is a pessimistic bound.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import dataset  # noqa: E402
from tests.storage import servers  # noqa: E402

PASSWORD = "bench"


def warm(root: Path) -> int:
    total = 0
    for p in root.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                while chunk := f.read(1 << 20):
                    total += len(chunk)
    return total


def timed_backup(url: str, data: Path, env: dict[str, str], work: Path) -> float:
    base = {**os.environ, **env, "AMBER_REPOSITORY": url, "AMBER_PASSWORD": PASSWORD,
            "XDG_CACHE_HOME": str(work / "cache"), "XDG_DATA_HOME": str(work / "data")}  # fmt: skip
    amber = [sys.executable, "-m", "amber"]
    subprocess.run([*amber, "init"], env=base, check=True, capture_output=True)
    started = time.monotonic()
    proc = subprocess.run([*amber, "backup", str(data)], env=base, capture_output=True)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"backup to {url} failed: {proc.stderr.decode(errors='replace')[-2000:]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-gb", type=float, default=0.3)
    ap.add_argument("--data", type=Path, default=Path("/var/tmp/amber-bench/backends-data"))
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--targets", default="local,sftp,s3")
    ap.add_argument("--json", type=Path, help="Also write the results here.")
    args = ap.parse_args(argv)
    targets = args.targets.split(",")

    dataset.ensure(args.data, args.size_gb)
    size = warm(args.data)
    work = Path(tempfile.mkdtemp(prefix="amber-bench-backends-", dir="/var/tmp"))
    started: list[subprocess.Popen[bytes]] = []
    results: dict[str, list[float]] = {t: [] for t in targets}
    try:
        sshd = moto = rest = None
        if "sftp" in targets:
            sshd = servers.start_sshd(work / "sshd")
            started.append(sshd.proc)
        if "s3" in targets:
            moto = servers.start_moto(work / "moto")
            started.append(moto.proc)
        if "rest" in targets:
            rest = servers.start_rest(work / "rest")
            started.append(rest.proc)
        for run in range(args.runs):
            for target in targets:
                repo_dir = work / f"{target}-{run}"
                env: dict[str, str] = {}
                if target == "local":
                    url = str(repo_dir)
                elif target == "sftp":
                    assert sshd is not None
                    url, env = sshd.url(repo_dir), sshd.env()
                elif target == "s3":
                    assert moto is not None
                    url, env = f"s3:{moto.endpoint}/{moto.new_bucket()}/repo", moto.env()
                elif target == "rest":
                    assert rest is not None
                    url = rest.repo_url()
                else:
                    raise SystemExit(f"unknown target {target}")
                seconds = timed_backup(url, args.data, env, work / f"state-{target}-{run}")
                results[target].append(seconds)
                print(
                    f"run {run + 1} {target:6s} {seconds:7.2f} s  {size / seconds / 1e6:7.1f} MB/s",
                    flush=True,
                )
                if target == "local":
                    shutil.rmtree(repo_dir, ignore_errors=True)
    finally:
        for proc in started:
            servers.stop(proc)
        shutil.rmtree(work, ignore_errors=True)

    best = {t: min(v) for t, v in results.items()}
    print(f"\ndataset: {size / 1e6:.0f} MB in {args.data}")
    print(f"{'target':8s} {'best s':>8s} {'MB/s':>8s} {'x local':>8s}")
    for t, s in best.items():
        ratio = s / best["local"] if "local" in best else float("nan")
        print(f"{t:8s} {s:8.2f} {size / s / 1e6:8.1f} {ratio:8.2f}")
    if args.json:
        args.json.write_text(json.dumps({"bytes": size, "seconds": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
