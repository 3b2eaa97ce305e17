"""Real FUSE mounts: `python -m amber mount` in a subprocess, read through the kernel.

Skipped only where /dev/fuse is absent or the kernel refuses the mount (the reason is
printed with the skip).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import AmberCli

pytestmark = pytest.mark.slow
_WAIT_S = 60.0
# What libfuse and fusermount say when this machine cannot mount (not when amber asks wrongly).
_REFUSED = ("not permitted", "Permission denied", "/dev/fuse", "fusermount", "no FUSE library")


def _fuse_missing() -> str | None:
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is absent"
    try:
        import mfusepy  # noqa: F401  (loads libfuse)
    except (ImportError, OSError) as exc:
        return f"mfusepy or libfuse cannot be loaded: {exc}"
    return None


def _unmount(mountpoint: Path, lazy: bool = False) -> None:
    tool = shutil.which("fusermount3") or shutil.which("fusermount")
    command = [tool, "-uz" if lazy else "-u"] if tool else ["umount", *(["-l"] if lazy else [])]
    subprocess.run([*command, str(mountpoint)], check=not lazy, capture_output=True, timeout=30)


def _wait(condition: object, what: str) -> None:
    deadline = time.monotonic() + _WAIT_S
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@contextmanager
def mounted(cli: AmberCli, mountpoint: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The mount process, once the kernel shows the mount; cleaned up whatever happens."""
    missing = _fuse_missing()
    if missing:
        pytest.skip(missing)
    mountpoint.mkdir(exist_ok=True)
    proc = cli.popen("mount", str(mountpoint))
    try:
        deadline = time.monotonic() + _WAIT_S
        while not os.path.ismount(mountpoint):
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                if proc.returncode == 29 and any(why in err for why in _REFUSED):
                    pytest.skip(f"mounting is impossible here: {err.strip()}")
                raise AssertionError(f"amber mount exited {proc.returncode}: {err}")
            assert time.monotonic() < deadline, "the mount did not appear"
            time.sleep(0.1)
        yield proc
    finally:
        if os.path.ismount(mountpoint):
            _unmount(mountpoint, lazy=True)
        if proc.poll() is None:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _manifest(cli: AmberCli) -> dict[bytes, str]:
    """Recorded SHA-256 of every regular file in the latest snapshot, by path."""
    out: dict[bytes, str] = {}
    for line in cli.run("manifest", "latest").stdout_bytes.splitlines():
        digest, _, path = line.partition(b"  ")
        out[path] = digest.decode()
    return out


def _sha256(path: Path | bytes) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "docs" / "deep").mkdir(parents=True)
    (src / "docs" / "big.bin").write_bytes(os.urandom(3 << 20))  # several blobs
    (src / "docs" / "deep" / "notes.txt").write_text("first\n")
    (src / "a.txt").write_text("hello\n")
    with open(os.fsencode(src) + b"/raw\xff.bin", "wb") as f:  # a name that is not UTF-8
        f.write(b"raw name\n")
    os.symlink("a.txt", src / "link")
    return src


def test_read_through_the_mount_and_see_a_new_backup(cli: AmberCli, tmp_path: Path) -> None:
    src = _source(tmp_path)
    cli.run("backup", str(src))
    recorded = _manifest(cli)
    assert len(recorded) == 4
    mnt = tmp_path / "mnt"
    with mounted(cli, mnt) as proc:
        assert sorted(os.listdir(mnt)) == ["hosts", "ids", "snapshots", "tags", "versions"]
        latest = mnt / "snapshots" / "latest"
        for path, digest in recorded.items():
            assert _sha256(os.fsencode(latest) + b"/" + path.lstrip(b"/")) == digest, path
        assert os.readlink(latest / str(src).lstrip("/") / "link") == "a.txt"
        first = os.readlink(latest)

        (src / "docs" / "deep" / "notes.txt").write_text("second, longer\n")
        cli.run("backup", str(src))  # while mounted
        _wait(lambda: os.readlink(latest) != first, "the new snapshot under snapshots/latest")
        notes = Path(str(src).lstrip("/")) / "docs/deep/notes.txt"
        assert (latest / notes).read_text() == "second, longer\n"
        assert (mnt / "snapshots" / first / notes).read_text() == "first\n"
        versions = mnt / "versions" / notes
        contents = sorted((versions / name).read_text() for name in os.listdir(versions))
        assert contents == ["first\n", "second, longer\n"]
        for path, digest in _manifest(cli).items():
            assert _sha256(os.fsencode(latest) + b"/" + path.lstrip(b"/")) == digest, path

        _unmount(mnt)
        assert proc.wait(timeout=30) == 0
        assert not os.path.ismount(mnt)
        assert proc.stderr is not None and b"unmounted" in proc.stderr.read()


def test_sigint_unmounts_cleanly(cli: AmberCli, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_text("x")
    cli.run("backup", str(tmp_path / "src"))
    mnt = tmp_path / "mnt"
    with mounted(cli, mnt) as proc:
        assert len(os.listdir(mnt / "snapshots")) == 2  # one snapshot and latest
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert not os.path.ismount(mnt)
