"""A real Btrfs filesystem on a loop device for a test: created, mounted, and always torn down."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root to mount a loop device"
    if shutil.which("mkfs.btrfs") is None or shutil.which("btrfs") is None:
        return "btrfs-progs is not installed (scripts/test.sh installs it)"
    if not os.path.exists("/dev/loop-control"):
        return "no loop devices"
    return None


needs_btrfs = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def btrfs(tmp_path: Path) -> Iterator[Path]:
    """A fresh 300 MB Btrfs filesystem mounted at tmp_path/mnt."""
    image, mnt = tmp_path / "btrfs.img", tmp_path / "mnt"
    mnt.mkdir()
    with open(image, "wb") as f:
        f.truncate(300 * 1024 * 1024)
    sh("mkfs.btrfs", "-q", str(image))
    sh("mount", "-o", "loop", str(image), str(mnt))
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False, capture_output=True)
        if os.path.ismount(mnt):  # something still holds it: detach lazily so the loop device goes
            subprocess.run(["umount", "-l", str(mnt)], check=False, capture_output=True)
        image.unlink(missing_ok=True)


def subvolume(path: Path) -> Path:
    sh("btrfs", "subvolume", "create", str(path))
    return path
