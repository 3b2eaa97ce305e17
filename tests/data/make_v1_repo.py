"""Build the frozen format-version-1 repositories of the format guard (tests/repository/test_format_guard.py).

Run once, with amber code that writes format version 1 (commit eb5a1b9 or any
earlier release), from the repository root:

    PYTHONPATH=src python tests/data/make_v1_repo.py tests/data

It writes, under the given directory:

* ``v1-repo.tar.gz``: ``v1/repo``, a version-1 repository with two snapshots of
  ``v1/src`` (a subdirectory, a symlink, an empty file, a file of several chunks,
  a small compressible file; the second snapshot changes one file and adds one);
  and ``v1/damaged``, its twin with one data pack's bytes flipped and the tree
  pack of the second snapshot deleted although the index references it.
* ``v1-manifest.json``: the password, the snapshot IDs in time order, and the
  SHA-256 of every file each snapshot restores (with symlink targets), which
  every later release must reproduce byte for byte.

The repository uses a small chunker (8-64 KiB chunks) so that a multi-chunk
file fits in a few hundred KiB, and a cheap key derivation so that tests open it
fast. Neither is a format change: both are read back from the repository.
Nothing here is reproducible byte for byte (keys and nonces are random): the
committed archive is the fixture, this script documents how it was made.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sys
import tarfile
from pathlib import Path

import msgspec

from amber.repository import KdfParams, init_repository, open_repository
from amber.repository.repo import FORMAT_VERSION, RepoConfig
from amber.services.backup import BackupRequest, backup_paths
from amber.storage import open_backend
from amber.storage.base import FileType, Handle

PASSWORD = "format guard v1"
KDF = KdfParams(time_cost=1, memory_kib=8192, parallelism=1)
MTIME = 1_700_000_000  # fixed times, so the restored metadata is predictable too


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _source(src: Path) -> None:
    rng = random.Random(20261203)
    _write(src / "README.txt", b"amber format guard, version 1\n" * 40)
    _write(src / "empty", b"")
    _write(src / "big.bin", rng.randbytes(200 * 1024))  # incompressible: many 8-64 KiB chunks
    _write(src / "sub" / "notes.txt", "naïve café ünïcode\n".encode() * 10)
    _write(src / "sub" / "deeper" / "leaf.dat", bytes(range(256)) * 16)
    os.symlink("sub/notes.txt", src / "link")


def _change(src: Path) -> None:
    _write(src / "sub" / "notes.txt", b"changed for the second snapshot\n")
    _write(src / "sub" / "added.txt", b"new in the second snapshot\n")


def _freeze_times(src: Path) -> None:
    for path in sorted(src.rglob("*"), key=lambda p: -len(p.parts)):
        os.utime(path, (MTIME, MTIME), follow_symlinks=False)
    os.utime(src, (MTIME, MTIME))


def _expected(src: Path) -> dict[str, str]:
    """Path (relative to src) -> "sha256:<hex>", "symlink:<target>" or "dir"."""
    out: dict[str, str] = {}
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src).as_posix()
        if path.is_symlink():
            out[rel] = "symlink:" + os.readlink(path)
        elif path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _small_chunks(location: str) -> None:
    """Rewrite the fresh repository's config with a small chunker (a v1 writer only)."""
    repo = open_repository(open_backend(location), PASSWORD.encode(), load_index=False)
    config = msgspec.structs.replace(
        repo.config, chunk_avg=16 * 1024, chunk_min=8 * 1024, chunk_max=64 * 1024
    )
    assert isinstance(config, RepoConfig)
    repo.backend.remove(Handle(FileType.CONFIG))
    repo.backend.save(Handle(FileType.CONFIG), repo.key.encrypt(msgspec.msgpack.encode(config)))
    repo.close()


def _damage(repo_dir: Path, damaged: Path, second_tree_packs: set[str]) -> dict[str, str]:
    shutil.copytree(repo_dir, damaged, symlinks=True)
    packs = sorted((damaged / "data").glob("*/*"))
    data_packs = [p for p in packs if p.name not in second_tree_packs]
    flipped = max(data_packs, key=lambda p: p.stat().st_size)  # big.bin's chunks live here
    raw = bytearray(flipped.read_bytes())
    for at in range(100, 132):
        raw[at] ^= 0xFF
    flipped.write_bytes(bytes(raw))
    removed = sorted(second_tree_packs)[0]
    (damaged / "data" / removed[:2] / removed).unlink()
    return {"flipped_pack": flipped.name, "removed_pack": removed}


def main(out_dir: str) -> None:
    if FORMAT_VERSION != 1:
        sys.exit(f"this amber writes format version {FORMAT_VERSION}; run the script with version-1 code")
    out = Path(out_dir).resolve()
    work = Path("/tmp/amber-format-guard")  # a short, fixed path: the snapshots record it
    shutil.rmtree(work, ignore_errors=True)
    src, repo_dir = work / "v1" / "src", work / "v1" / "repo"
    _source(src)
    _freeze_times(src)
    init_repository(open_backend(str(repo_dir)), PASSWORD.encode(), KDF).close()
    _small_chunks(str(repo_dir))
    snapshots: list[dict[str, object]] = []
    packs_before: set[str] = set()
    for step in (1, 2):
        if step == 2:
            _change(src)
            _freeze_times(src)
        packs_before = {p.name for p in (repo_dir / "data").glob("*/*")}
        repo = open_repository(open_backend(str(repo_dir)), PASSWORD.encode())
        with repo.lock():
            outcome = backup_paths(repo, BackupRequest(
                paths=[str(src)], host="guard", time=f"2026-12-0{step}T12:00:00+00:00", workers=1,
            ))  # fmt: skip
        repo.close()
        snapshots.append({"id": outcome.snapshot_id, "path": str(src), "files": _expected(src)})
    new_packs = {p.name for p in (repo_dir / "data").glob("*/*")} - packs_before
    repo = open_repository(open_backend(str(repo_dir)), PASSWORD.encode())
    tree_packs = {loc.pack for _, loc in repo.blobs.index.blobs() if loc.pack in new_packs and loc.type == 1}
    repo.close()
    damage = _damage(repo_dir, work / "v1" / "damaged", tree_packs)
    shutil.rmtree(src)
    with tarfile.open(out / "v1-repo.tar.gz", "w:gz") as tar:
        tar.add(work / "v1", arcname="v1")
    manifest = {"password": PASSWORD, "format_version": 1, "snapshots": snapshots, "damage": damage}
    (out / "v1-manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    shutil.rmtree(work)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data")
