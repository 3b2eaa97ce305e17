"""Disk full and permission denied, on real filesystems: clear one-line errors, nothing lost."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import AmberCli, is_root

root_only = pytest.mark.skipif(not is_root(), reason="needs root (mount, setpriv)")


@pytest.fixture
def small_fs() -> Iterator[Path]:
    """A 24 MiB tmpfs: a real filesystem that really fills up."""
    mnt = Path(tempfile.mkdtemp(prefix="amber-full-"))
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], capture_output=True)
    if proc.returncode != 0:
        mnt.rmdir()
        pytest.skip(f"cannot mount tmpfs: {proc.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        mnt.rmdir()


def _single_error_line(stderr: str) -> None:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("amber:")]
    assert len(lines) == 1, stderr


@root_only
def test_disk_full_is_a_clear_error_and_keeps_earlier_snapshots(small_fs: Path, tmp_path: Path) -> None:
    cli = AmberCli(small_fs / "repo", tmp_path)
    cli.run("init")
    small = tmp_path / "small"
    small.mkdir()
    (small / "keep.txt").write_bytes(b"precious\n" * 1000)
    cli.run("backup", str(small))

    ballast = small_fs / "ballast"  # something else on the same disk that the user can delete
    ballast.write_bytes(os.urandom(6 << 20))
    big = tmp_path / "big"
    big.mkdir()
    for i in range(4):
        (big / f"random-{i}.bin").write_bytes(os.urandom(10 << 20))  # incompressible, 40 MiB
    res = cli.run("backup", str(big), check=False)
    assert res.returncode == 17, res.stderr
    assert "no space left" in res.stderr
    _single_error_line(res.stderr)
    assert len(list((small_fs / "repo" / "snapshots").iterdir())) == 1  # no snapshot for the failed run

    # the repository is still consistent and the earlier snapshot restores
    snaps = cli.run("snapshots", "--json").stdout
    assert snaps.count('"short_id"') == 1
    target = tmp_path / "restore"
    cli.run("restore", "latest", "--target", str(target), "--verify")
    assert (Path(str(target) + str(small)) / "keep.txt").read_bytes() == b"precious\n" * 1000
    assert cli.run("check", "--read-data").returncode == 0

    # once space is freed, the next backup succeeds without any repair step
    ballast.unlink()
    medium = tmp_path / "medium"
    medium.mkdir()
    content = os.urandom(3 << 20)
    (medium / "new.bin").write_bytes(content)
    cli.run("backup", str(medium))
    assert len(list((small_fs / "repo" / "snapshots").iterdir())) == 2
    cli.run("check", "--read-data")
    target2 = tmp_path / "restore2"
    cli.run("restore", "latest", "--target", str(target2), "--verify")
    assert (Path(str(target2) + str(medium)) / "new.bin").read_bytes() == content


@root_only
def test_permission_denied_is_a_clear_error(tmp_path: Path) -> None:
    shared = Path(tempfile.mkdtemp(prefix="amber-perm-", dir="/tmp"))
    try:
        shared.chmod(0o755)
        cli = AmberCli(shared / "repo", tmp_path)
        cli.run("init")  # as root: a repository user nobody may read but not write
        src = shared / "src"
        src.mkdir()
        (src / "a.txt").write_text("a")
        for p in [shared, *shared.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        env = {**cli.env, "HOME": str(shared), "XDG_DATA_HOME": str(shared), "XDG_CACHE_HOME": str(shared)}
        proc = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             sys.executable, "-m", "amber", "backup", str(src)],
            capture_output=True, env=env, cwd="/",
        )  # fmt: skip
        stderr = proc.stderr.decode()
        assert proc.returncode == 16, stderr
        assert "permission denied" in stderr
        _single_error_line(stderr)
    finally:
        shutil.rmtree(shared)


def _fill(fs: Path) -> Path:
    """Take every byte left on ``fs``, as another program would."""
    filler = fs / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError:
                continue
    finally:
        os.close(fd)
    return filler


@root_only
def test_prune_reclaims_a_failed_backup_on_a_full_disk(small_fs: Path, tmp_path: Path) -> None:
    cli = AmberCli(small_fs / "repo", tmp_path)
    cli.run("init")
    small = tmp_path / "small"
    small.mkdir()
    (small / "keep.txt").write_bytes(b"precious\n" * 1000)
    cli.run("backup", str(small))
    big = tmp_path / "big"
    big.mkdir()
    for i in range(4):
        (big / f"random-{i}.bin").write_bytes(os.urandom(10 << 20))
    res = cli.run("backup", str(big), check=False)
    assert res.returncode == 17, res.stderr
    _single_error_line(res.stderr)
    assert "run `amber prune` (it works on a full disk) to reclaim what this backup left" in res.stderr
    left = sum(p.stat().st_size for p in (small_fs / "repo" / "data").rglob("*") if p.is_file())

    _fill(small_fs)
    assert os.statvfs(small_fs).f_bavail == 0
    pruned = cli.run("prune")
    assert "the disk was full: first removed" in pruned.stderr + pruned.stdout
    assert os.statvfs(small_fs).f_bavail * os.statvfs(small_fs).f_frsize >= left - (1 << 20)
    cli.run("check", "--read-data")
    target = tmp_path / "restore"
    cli.run("restore", "latest", "--target", str(target), "--verify")
    assert (Path(str(target) + str(small)) / "keep.txt").read_bytes() == b"precious\n" * 1000
    assert len(list((small_fs / "repo" / "snapshots").iterdir())) == 1
