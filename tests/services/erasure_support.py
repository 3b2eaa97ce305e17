"""Shared helpers for the rewrite and purge tests: real repositories, real backups, real restores."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import blake3

from amber.repository import BlobType, Repository, init_repository, open_repository
from amber.repository.crypto import KdfParams
from amber.services.backup import BackupRequest, backup_paths
from amber.services.restore import RestoreRequest, restore
from amber.storage import FileType, open_backend
from tests.conftest import PASSWORD


def make_repo(path: Path, append_only: bool = False) -> Path:
    init_repository(open_backend(str(path)), PASSWORD.encode(), KdfParams(1, 1024, 1),
                    append_only=append_only).close()  # fmt: skip
    return path


def open_repo(path: Path) -> Repository:
    return open_repository(open_backend(str(path)), PASSWORD.encode())


def random_bytes(n: int, *tag: object) -> bytes:
    return blake3.blake3(repr(tag).encode()).digest(length=n)


def backup(path: Path, src: Path, tags: tuple[str, ...] = ()) -> str:
    repo = open_repo(path)
    try:
        with repo.lock():
            return backup_paths(repo, BackupRequest(paths=[str(src)], tags=list(tags))).snapshot_id
    finally:
        repo.close()


def manifest(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = Path(dirpath, name)
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def restored(repo: Repository, sid: str, src: Path, scratch: Path) -> dict[str, str]:
    target = scratch / f"r-{sid[:8]}"
    shutil.rmtree(target, ignore_errors=True)
    result = restore(repo, RestoreRequest(ref=sid, target=str(target)))
    assert not result.errors, result.errors
    try:
        return manifest(target / src.relative_to("/"))
    finally:
        shutil.rmtree(target)


def stored_plaintexts(repo: Repository) -> list[tuple[BlobType, bytes, bytes]]:
    """Every blob in every stored pack (indexed or not), decrypted: (type, id, plaintext)."""
    out = []
    for pack in sorted(fi.name for fi in repo.backend.list(FileType.PACK)):
        raw, header = repo.blobs.read_pack(pack)
        for b in header:
            plain = repo.blobs.decode_blob(b.id, raw[b.offset : b.offset + b.length], b.raw_length, b.type)
            out.append((b.type, b.id, plain))
    return out


def holds_bytes_of(blobs: list[tuple[BlobType, bytes, bytes]], secret: bytes) -> bool:
    """A stored data blob is a piece of ``secret``, or holds a probe from its middle."""
    probe = secret[len(secret) // 2 : len(secret) // 2 + 256]
    return any((len(p) >= 1024 and p in secret) or probe in p for _, _, p in blobs)
