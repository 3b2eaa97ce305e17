"""Rollback times on a real Btrfs filesystem (loop device): local, and from the repository.

Issue 14's targets: rollback of a 10 GB subvolume from a local snapshot in <= 5 s,
and from the repository of a 5 GB subvolume in <= 60 s on this 2-core machine.

Steps (needs root, btrfs-progs, about 2.5x the data size free in --workdir):
1. a sparse image file, mkfs.btrfs, mounted on a loop device; subvolumes ``big``
   (--local-gb) and ``half`` (--repo-gb) filled with generated data of mixed sizes
   (small text-like files, medium and large files; half incompressible random,
   half base64 text that compresses about 4:3; every byte unique);
2. ``amber run big`` (snapshot_keep = 1: its local snapshot stays), damage ``big``
   (a directory deleted, files overwritten, files added), timed ``amber rollback big --yes``;
   the backup of ``big`` is deleted then to save space;
3. ``amber run half``, damage ``half``, timed ``amber rollback half --from-repo ID --yes``
   (restore into a fresh subvolume with every file's SHA-256 verified, then the swap);
4. after each rollback, every file is compared with what was generated (size + BLAKE2b).

Usage: python bench/rollbackbench.py [--local-gb 10] [--repo-gb 5] [--workdir DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import measure
from tools import PASSWORD

MIB = 1 << 20


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def content(rng: random.Random, size: int) -> bytes:
    """``size`` unique bytes: 1 MiB pieces alternating random and base64 text."""
    out = bytearray()
    while len(out) < size:
        n = min(MIB, size - len(out))
        if rng.random() < 0.5:
            out += os.urandom(n)
        else:
            out += base64.b64encode(os.urandom(n * 3 // 4 + 3))[:n]
    return bytes(out)


def generate(root: Path, total: int, seed: int) -> int:
    """Fill ``root``: ~5 % in 4-64 KiB files, ~25 % in 1-16 MiB files, the rest in 128-512 MiB files."""
    rng = random.Random(seed)
    files = 0
    for share, low, high, kind in ((0.05, 4 << 10, 64 << 10, "small"), (0.25, MIB, 16 * MIB, "medium"),
                                   (0.70, 128 * MIB, 512 * MIB, "large")):  # fmt: skip
        budget = int(total * share)
        while budget > 0:
            size = min(budget, rng.randint(low, high))
            d = root / kind / f"d{files // 200:04d}"
            d.mkdir(parents=True, exist_ok=True)
            with open(d / f"f{files:06d}", "wb") as f:
                left = size
                while left:
                    piece = content(rng, min(left, 64 * MIB))
                    f.write(piece)
                    left -= len(piece)
            files += 1
            budget -= size
    return files


def damage(root: Path) -> None:
    """A directory deleted, files overwritten and added: what a bad upgrade or a mistake does."""
    shutil.rmtree(next((root / "small").iterdir()))
    for i, path in enumerate(sorted((root / "medium").rglob("f*"))[:20]):
        path.write_bytes(b"broken %d\n" % i)
    (root / "new").mkdir()
    for i in range(100):
        (root / "new" / f"junk{i}").write_bytes(os.urandom(4096))


class Amber:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.config = workdir / "config.toml"
        self.env = {**os.environ, "HOME": str(workdir / "home"), "AMBER_PASSWORD": PASSWORD}

    def run(self, *args: str) -> tuple[float, str]:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "amber", "--config", str(self.config), *args],
                              capture_output=True, text=True, env=self.env)  # fmt: skip
        took = time.monotonic() - started
        if done.returncode != 0:
            raise SystemExit(f"amber {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
        return took, done.stdout + done.stderr


def write_config(workdir: Path, mnt: Path) -> None:
    jobs = "".join(
        f"""
[repositories.{job}]
url = "{workdir / f"repo-{job}"}"

[jobs.{job}]
paths = ["{mnt / job}"]
repository = "{job}"
snapshot = "btrfs"
snapshot_keep = 1
check = {{ enabled = false }}
"""
        for job in ("big", "half")
    )
    state = workdir / "state"
    (workdir / "config.toml").write_text(
        jobs + f'\n[state]\npath = "{state / "state.db"}"\naudit_log = "{state / "audit.log"}"\n'
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--local-gb", type=float, default=10.0, help="0: skip the local rollback")
    p.add_argument("--repo-gb", type=float, default=5.0)
    p.add_argument("--workdir", type=Path, default=Path("/var/tmp/amber-rollbackbench"))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("needs root (loop device, mount)")
    workdir: Path = args.workdir
    shutil.rmtree(workdir, ignore_errors=True)
    (workdir / "home").mkdir(parents=True)
    image, mnt = workdir / "btrfs.img", workdir / "mnt"
    mnt.mkdir()
    local_bytes, repo_bytes = int(args.local_gb * (1 << 30)), int(args.repo_gb * (1 << 30))
    with open(image, "wb") as f:
        f.truncate(int((local_bytes + 2 * repo_bytes) * 1.3) + (2 << 30))
    sh("mkfs.btrfs", "-q", str(image))
    sh("mount", "-o", "loop", str(image), str(mnt))
    results: dict[str, object] = {"local_gb": args.local_gb, "repo_gb": args.repo_gb}
    try:
        for job, size in (("big", local_bytes), ("half", repo_bytes)):
            if not size:
                continue
            sh("btrfs", "subvolume", "create", str(mnt / job))
            started = time.monotonic()
            files = generate(mnt / job, size, args.seed + len(job))
            log(f"generated {size / (1 << 30):.1f} GiB in {files} files in {mnt / job} "
                f"({time.monotonic() - started:.0f}s)")  # fmt: skip
            results[f"{job}_files"] = files
        write_config(workdir, mnt)
        amber = Amber(workdir)
        for job in ("big", "half"):
            amber.run("-r", str(workdir / f"repo-{job}"), "init")
        sh("sync")
        if local_bytes:
            expected_big = measure.tree_digest(mnt / "big")
            took, _ = amber.run("run", "big")
            log(f"amber run big (backup of {args.local_gb} GiB, local snapshot kept): {took:.1f}s")
            results["backup_big_s"] = round(took, 2)
            shutil.rmtree(workdir / "repo-big")  # not needed for a local rollback; frees the space
            damage(mnt / "big")
            sh("sync")
            measure.drop_caches()
            took, out = amber.run("rollback", "big", "--yes")
            log(f"amber rollback big (local, {args.local_gb} GiB): {took:.2f}s\n{out.strip()}")
            results["rollback_local_s"] = round(took, 3)
            diff = measure.compare_trees(expected_big, measure.tree_digest(mnt / "big"))
            results["rollback_local_verify"] = diff or "OK"
            log(f"  verify: {diff or 'OK (all files identical)'}")

        expected_half = measure.tree_digest(mnt / "half")
        took, out = amber.run("run", "half")
        results["backup_half_s"] = round(took, 2)
        log(f"amber run half (backup of {args.repo_gb} GiB): {took:.1f}s")
        _, listing = amber.run("-r", str(workdir / "repo-half"), "snapshots", "--json")
        snapshot_id = json.loads(listing)[-1]["id"]
        damage(mnt / "half")
        sh("sync")
        measure.drop_caches()
        took, out = amber.run("rollback", "half", "--from-repo", snapshot_id, "--yes")
        log(f"amber rollback half --from-repo ({args.repo_gb} GiB): {took:.2f}s\n{out.strip()}")
        results["rollback_from_repo_s"] = round(took, 3)
        diff = measure.compare_trees(expected_half, measure.tree_digest(mnt / "half"))
        results["rollback_from_repo_verify"] = diff or "OK"
        log(f"  verify: {diff or 'OK (all files identical)'}")
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
        if os.path.ismount(mnt):
            subprocess.run(["umount", "-l", str(mnt)], check=False)
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
