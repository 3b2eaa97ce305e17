"""A backup killed with SIGKILL at any moment leaves a healthy repository.

Design §11: packs -> index -> snapshot, every object saved atomically. After a kill
the repository may hold unindexed packs or unreferenced blobs (warnings only), but
``check`` passes, every earlier snapshot restores byte-identically, and the next
backup succeeds without any recovery step.

Each generation of source data lives in its own directory and is never modified
after it is written, so a snapshot's expected content is the generation's manifest
(relative path -> SHA-256), computed from the bytes as they were generated.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import blake3
import pytest

from tests.conftest import AmberCli

SEED = 20241126
KILLS = 5
MIN_DELAY = 0.05
RANDOM_FILES = 4  # each > 16 MiB, so one file alone fills a pack
RANDOM_SIZE = 20 << 20
TEXT_FILES = 2  # compressible
TEXT_SIZE = 10 << 20
SMALL_FILES = 150  # many small files -> several tree blobs and a mixed data pack

pytestmark = pytest.mark.slow


@dataclass
class Generation:
    number: int
    path: Path
    manifest: dict[str, str]  # relative path -> sha256 hex


def _bytes(n: int, *tag: object) -> bytes:
    return blake3.blake3(repr((SEED, *tag)).encode()).digest(length=n)


def _make_generation(root: Path, number: int) -> Generation:
    """~100 MiB of new content: random, compressible, duplicated, and small files."""
    path = root / f"gen{number}"
    files: dict[str, bytes] = {}
    for i in range(RANDOM_FILES):
        files[f"random/r{i}.bin"] = _bytes(RANDOM_SIZE, number, "random", i)
    for i in range(TEXT_FILES):
        files[f"text/t{i}.txt"] = _bytes(TEXT_SIZE // 2, number, "text", i).hex().encode()
    files["text/copy-of-t0.txt"] = files["text/t0.txt"]  # deduplicates within the run
    rng = random.Random(f"{SEED}-{number}")
    for i in range(SMALL_FILES):
        files[f"small/d{i % 7}/f{i}.dat"] = _bytes(rng.randint(0, 40_000), number, "small", i)
    files["small/empty"] = b""
    manifest = {}
    for rel, data in files.items():
        p = path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        manifest[rel] = hashlib.sha256(data).hexdigest()
    return Generation(number, path, manifest)


def _tree_manifest(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            p = Path(dirpath, name)
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _backup(cli: AmberCli, gen: Generation) -> str:
    res = cli.run("backup", "--json", str(gen.path))
    for line in res.stdout.splitlines():
        if line.startswith("{"):
            doc = json.loads(line)
            if doc.get("message_type") == "summary":
                assert not doc["partial"]
                return str(doc["snapshot_id"])
    raise AssertionError(f"no summary in backup output: {res.stdout}")


def _assert_check_passes(cli: AmberCli, *args: str) -> str:
    res = cli.run("check", *args, check=False)
    text = res.stdout + res.stderr
    assert res.returncode == 0, f"check {' '.join(args)} failed after a crash:\n{text}"
    assert "error:" not in res.stderr, text
    assert "Traceback" not in text
    for line in res.stderr.splitlines():  # leftovers of a crash are warnings, nothing else
        assert line.startswith("warning:"), line
    return text


def _assert_restores(cli: AmberCli, snap: str, gen: Generation, scratch: Path) -> None:
    target = scratch / f"restore-{snap[:8]}"
    try:
        cli.run("restore", snap, "-t", str(target))
        restored = target / gen.path.relative_to("/")
        assert _tree_manifest(restored) == gen.manifest, f"snapshot {snap[:8]} of gen{gen.number}"
    finally:
        shutil.rmtree(target, ignore_errors=True)


def _packs(repo: Path) -> set[str]:
    return {p.name for p in (repo / "data").glob("*/*") if not p.name.startswith(".")}


def test_sigkill_during_backup_leaves_repository_healthy(cli: AmberCli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    scratch = tmp_path / "scratch"
    try:
        _run_kill_rounds(cli, src, scratch)
    finally:  # the data is large: do not leave it in pytest's kept temp dirs
        shutil.rmtree(src, ignore_errors=True)
        shutil.rmtree(cli.repo, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)


def _run_kill_rounds(cli: AmberCli, src: Path, scratch: Path) -> None:
    gen0 = _make_generation(src, 0)
    started = time.monotonic()
    snapshots: list[tuple[str, Generation]] = [(_backup(cli, gen0), gen0)]
    full = time.monotonic() - started
    assert len(_packs(cli.repo)) >= RANDOM_FILES, "the dataset should span several packs"

    # one kill delay in each fifth of [MIN_DELAY, full]: startup, reading, pack
    # writes, and the final flush / index / snapshot all get hit
    rng = random.Random(SEED)
    delays = [MIN_DELAY + (full - MIN_DELAY) * (k + rng.random()) / KILLS for k in range(KILLS)]
    rng.shuffle(delays)

    killed = 0
    killed_after_packs = 0
    for number, delay in enumerate(delays, 1):
        gen = _make_generation(src, number)
        packs_before = _packs(cli.repo)
        snaps_before = set(os.listdir(cli.repo / "snapshots"))
        proc = cli.popen("backup", str(gen.path))
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
        if proc.returncode == -signal.SIGKILL:
            killed += 1
            killed_after_packs += bool(_packs(cli.repo) - packs_before)
        else:
            assert proc.returncode == 0, err.decode(errors="replace")
        new_snaps = set(os.listdir(cli.repo / "snapshots")) - snaps_before
        print(  # shown when the test fails
            f"round {number}: kill after {delay:.2f}s of {full:.2f}s -> exit {proc.returncode}, "
            f"{len(_packs(cli.repo) - packs_before)} new packs, {len(new_snaps)} new snapshots"
        )
        assert len(new_snaps) <= 1
        if new_snaps:  # the kill came too late: that snapshot must be whole too
            snapshots.append((new_snaps.pop(), gen))

        _assert_check_passes(cli)
        for snap, earlier in snapshots:
            _assert_restores(cli, snap, earlier, scratch)
        # the next backup needs no recovery step
        snapshots.append((_backup(cli, gen), gen))

    assert killed >= 3, f"only {killed} of {KILLS} backups were interrupted (full run {full:.2f}s)"
    assert killed_after_packs >= 1, "no kill landed after packs were written"
    _assert_check_passes(cli, "--read-data")
    last_snap, last_gen = snapshots[-1]
    _assert_restores(cli, last_snap, last_gen, scratch)
