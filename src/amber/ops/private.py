"""Files only this user may read: the state database, the audit log and its side files.

They hold run history, hashes and job names (and once held URLs with
passwords), so they are created 0600 in 0700 directories, and files made by an
older version with the umask's 0644 are tightened when next opened.
"""

from __future__ import annotations

import contextlib
import os

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: str | os.PathLike[str]) -> None:
    """Create ``path`` (and parents) and make the directory itself 0700."""
    os.makedirs(path, mode=DIR_MODE, exist_ok=True)
    with contextlib.suppress(PermissionError):  # not ours (e.g. a shared parent): leave it
        os.chmod(path, DIR_MODE)


def private_file(path: str | os.PathLike[str]) -> None:
    """Create ``path`` empty if missing; make it 0600 either way (never following a symlink)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def tighten(path: str | os.PathLike[str]) -> None:
    """Make an existing file 0600; a missing one is fine."""
    with contextlib.suppress(FileNotFoundError):
        os.chmod(path, FILE_MODE, follow_symlinks=False)


def write_private(path: str | os.PathLike[str], data: bytes) -> None:
    """Atomically replace ``path`` with ``data``, mode 0600: temp file, fsync, rename."""
    tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
