"""Stress: 3 backup loops, a forget+prune loop and random SIGKILLs on one repository.

Each worker owns a source tree that changes only between its own backups, and
tags every backup with its run, so the expected content of every snapshot is
the manifest recorded for that tag. After the storm, the next prune finishes
whatever was interrupted, ``check --read-data`` passes, and every snapshot
that remains restores byte-identically.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import blake3
import pytest

from tests.conftest import AmberCli

pytestmark = pytest.mark.slow

WORKERS = 3
DURATION_S = 40.0
SEED = 3


def _manifest(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = Path(dirpath, name)
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


class Storm:
    def __init__(self, cli: AmberCli, root: Path) -> None:
        self.cli = cli
        self.root = root
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.running: list[subprocess.Popen[bytes]] = []
        self.expected: dict[str, dict[str, str]] = {}  # tag -> manifest
        self.failures: list[str] = []
        self.kills = 0
        self.backups = 0
        self.prunes = 0

    def _run(self, *args: str) -> int:
        proc = self.cli.popen(*args)
        with self.lock:
            self.running.append(proc)
        _, err = proc.communicate()
        with self.lock:
            self.running.remove(proc)
        if proc.returncode not in (0, -signal.SIGKILL):
            self.failures.append(f"amber {' '.join(args)} exited {proc.returncode}: {err.decode()[-500:]}")
        return proc.returncode

    def _mutate(self, src: Path, rng: random.Random, gen: int) -> None:
        src.mkdir(parents=True, exist_ok=True)
        files = sorted(src.rglob("f*"))
        for p in files:
            if rng.random() < 0.3:
                p.unlink()
        for i in range(rng.randint(3, 8)):
            d = src / f"d{rng.randint(0, 3)}"
            d.mkdir(exist_ok=True)
            size = rng.choice([0, 100, 5_000, 60_000, 300_000, 1_500_000])
            (d / f"f{gen}-{i}").write_bytes(blake3.blake3(f"{src}-{gen}-{i}".encode()).digest(length=size))

    def backup_loop(self, worker: int) -> None:
        rng = random.Random(SEED * 100 + worker)
        src = self.root / f"src{worker}"
        gen = 0
        while not self.stop.is_set():
            self._mutate(src, rng, gen)
            tag = f"w{worker}-g{gen}"
            self.expected[tag] = _manifest(src)
            if self._run("backup", "--tag", tag, str(src)) == 0:
                self.backups += 1
            gen += 1

    def prune_loop(self) -> None:
        rng = random.Random(SEED)
        while not self.stop.wait(rng.uniform(0.5, 2.0)):
            if self._run("forget", "--keep-last", "2", "--prune", "--max-unused", "0%") == 0:
                self.prunes += 1

    def kill_loop(self) -> None:
        rng = random.Random(SEED + 1)
        while not self.stop.wait(rng.uniform(1.0, 3.0)):
            with self.lock:
                victims = [p for p in self.running if p.poll() is None]
            prunes = [p for p in victims if "forget" in p.args]  # type: ignore[operator]
            backups = [p for p in victims if p not in prunes]
            pool = prunes if rng.random() < 0.2 else backups  # most prunes must get to finish
            if pool:
                rng.choice(pool).send_signal(signal.SIGKILL)
                self.kills += 1


def test_concurrent_backups_prunes_and_kills(cli: AmberCli, tmp_path: Path) -> None:
    storm = Storm(cli, tmp_path / "sources")
    threads = [threading.Thread(target=storm.backup_loop, args=(w,)) for w in range(WORKERS)]
    threads += [threading.Thread(target=storm.prune_loop), threading.Thread(target=storm.kill_loop)]
    for t in threads:
        t.start()
    try:
        time.sleep(DURATION_S)
    finally:
        storm.stop.set()
        for t in threads:
            t.join(timeout=120)
    assert not storm.failures, "\n".join(storm.failures)
    print(f"{storm.backups} backups, {storm.prunes} prunes, {storm.kills} kills")
    assert storm.backups >= 6 and storm.prunes >= 2 and storm.kills >= 4

    done = json.loads(cli.run("prune", "--json").stdout)  # finishes what kills interrupted
    assert done["pending"]["packs"] == 0
    res = cli.run("check", "--read-data")
    assert "error" not in res.stderr

    snaps = json.loads(cli.run("snapshots", "--json").stdout)
    assert len(snaps) >= WORKERS
    scratch = tmp_path / "restore"
    for snap in snaps:
        (tag,) = snap["tags"]
        worker = int(tag[1 : tag.index("-")])
        cli.run("restore", snap["id"], "--target", str(scratch))
        src = tmp_path / "sources" / f"src{worker}"
        assert _manifest(scratch / src.relative_to("/")) == storm.expected[tag], tag
        shutil.rmtree(scratch)
