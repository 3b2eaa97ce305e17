"""Benign churn and a simulated attack on a small, realistic tree (tests and bench share them)."""

from __future__ import annotations

import gzip
import os
import random
from pathlib import Path

WORDS = ("the", "of", "and", "budget", "report", "meeting", "invoice", "client", "project", "plan",
         "draft", "notes", "summary", "total")


def _text(rng: random.Random, size: int) -> bytes:
    out: list[str] = []
    while sum(map(len, out)) < size:
        out.append(rng.choice(WORDS))
    return " ".join(out).encode()[:size]


def _binary(rng: random.Random, size: int) -> bytes:
    """Like an executable: runs of zeros, opcodes from a small alphabet, some strings."""
    parts = [b"\x7fELF\x02\x01\x01\x00"]
    while sum(map(len, parts)) < size:
        parts.append(bytes(rng.choice(b"\x00\x48\x89\xe5\xc3\x0f\x1f\x44\xff\x8b") for _ in range(64)))
        parts.append(b"\x00" * rng.randint(8, 64))
    return b"".join(parts)[:size]


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def make_home(root: Path, seed: int = 0, files: int = 240) -> None:
    """Documents, PDFs, photos, programs, source code and logs; files of 1-8 KiB."""
    rng = random.Random(seed)
    for i in range(files):
        kind = i % 6
        size = rng.randint(1500, 8000)
        if kind == 0:
            _write(root / "docs" / f"d{i // 40}" / f"note{i}.txt", _text(rng, size))
        elif kind == 1:
            _write(root / "docs" / f"d{i // 40}" / f"paper{i}.pdf", b"%PDF-1.7\n" + _text(rng, size))
        elif kind == 2:
            _write(root / "photos" / f"img{i}.jpg", b"\xff\xd8\xff\xe0" + rng.randbytes(size))
        elif kind == 3:
            _write(root / "bin" / f"tool{i}", _binary(rng, size))
        elif kind == 4:
            _write(root / "src" / f"mod{i}.c", _text(rng, size))
        else:
            _write(root / "logs" / f"app{i}.log", _text(rng, size))
            _write(root / "logs" / f"app{i}.log.1.gz", gzip.compress(_text(rng, size)))


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def software_update(root: Path, rng: random.Random) -> None:
    for p in _files(root / "bin"):
        _write(p, _binary(rng, p.stat().st_size + rng.randint(-200, 200)))
    for i in range(300):  # a new release ships more tools and libraries
        _write(root / "bin" / "lib" / f"libnew{i}.so", _binary(rng, 1200))


def photo_import(root: Path, rng: random.Random) -> None:
    for i in range(300):
        _write(root / "photos" / "2026" / f"IMG_{i:04}.JPG", b"\xff\xd8\xff\xe1" + rng.randbytes(3000))


def build_tree(root: Path, rng: random.Random) -> None:
    for p in _files(root / "src"):
        _write(p.with_suffix(".o"), _binary(rng, 4000))
    for i in range(200):
        _write(root / "build" / f"obj{i}.o", _binary(rng, 2000))
        _write(root / "build" / f"obj{i}.d", _text(rng, 1200))


def rebuild(root: Path, rng: random.Random) -> None:
    """A second build over the first: every object rewritten, some removed."""
    for p in _files(root / "build"):
        if rng.random() < 0.2:
            p.unlink()
        else:
            _write(p, _binary(rng, 2000) if p.suffix == ".o" else _text(rng, 1200))


def log_rotation(root: Path, rng: random.Random) -> None:
    for p in _files(root / "logs"):
        if p.suffix == ".log":
            rotated = p.with_name(p.name + ".1.gz")
            _write(rotated, gzip.compress(p.read_bytes()))
            _write(p, _text(rng, 2000))


def branch_checkout(root: Path, rng: random.Random) -> None:
    files = _files(root / "src")
    for p in files[: len(files) // 2]:
        _write(p, _text(rng, rng.randint(1500, 8000)))
    for p in files[len(files) // 2 : len(files) * 3 // 4]:
        p.unlink()
    for i in range(30):
        _write(root / "src" / "feature" / f"new{i}.c", _text(rng, 3000))


def ransomware(root: Path, rng: random.Random, share: float = 0.4) -> None:
    """Overwrite ``share`` of the files with ciphertext, rename them, drop a note per directory."""
    files = _files(root)
    rng.shuffle(files)
    dirs = set()
    for p in files[: int(len(files) * share)]:
        ciphertext = rng.randbytes(p.stat().st_size + 16)
        p.unlink()
        _write(p.with_name(p.name + ".locked"), ciphertext)
        dirs.add(p.parent)
    for d in dirs:
        _write(d / "HOW_TO_DECRYPT_FILES.txt", b"Your files are encrypted. Pay 1 BTC to recover them.\n" * 30)


def ransomware_in_place(root: Path, rng: random.Random, share: float = 0.4) -> None:
    """Encrypt in place, no rename, no note: only the content gives it away."""
    files = _files(root)
    rng.shuffle(files)
    for p in files[: int(len(files) * share)]:
        _write(p, rng.randbytes(p.stat().st_size))


BENIGN = {
    "software_update": software_update,
    "photo_import": photo_import,
    "build_tree": build_tree,
    "log_rotation": log_rotation,
    "branch_checkout": branch_checkout,
}
ATTACKS = {"ransomware": ransomware, "ransomware_in_place": ransomware_in_place}


def touch_all(root: Path) -> None:
    """Bump mtimes so the next backup sees each change (tests run within one second)."""
    for p in _files(root):
        st = p.stat()
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
