"""Which snapshots this host wrote: the trust record behind parent reuse (design §12).

A parent snapshot lets a backup skip reading unchanged files, so whoever
wrote it decides what those files contain in the new snapshot. Any key holder
can write a snapshot with this host's name and paths, so the repository alone
cannot say who wrote one. This host keeps its own list, in the per-repository
cache directory ``$XDG_CACHE_HOME/amber/<repository id>/`` (mode 0700), file
``written`` (mode 0600), one snapshot ID a line.

It is derived trust data: if it is lost, the next backup reads every file
once (safe, only slower) and the list starts again. A list that another user
owns or could have written (group- or world-writable) is ignored the same way.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable

MAX_BYTES = 8 << 20  # read at most this much; a longer list is compacted
COMPACT_AT = 4 << 20
_ID = re.compile(r"^[0-9a-f]{64}$")


def cache_root() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "amber")


def repo_cache_dir(repo_id: str, create: bool = False) -> str:
    """``$XDG_CACHE_HOME/amber/<repo id>``; created 0700 (and tightened to 0700) if ``create``."""
    if not re.fullmatch(r"[0-9a-f]{1,64}", repo_id):
        raise ValueError(f"bad repository id {repo_id!r}")
    path = os.path.join(cache_root(), repo_id)
    if create:
        os.makedirs(path, mode=0o700, exist_ok=True)
        os.chmod(cache_root(), 0o700)
        os.chmod(path, 0o700)
    return path


class OwnSnapshots:
    """The IDs of the snapshots this host wrote into one repository."""

    def __init__(self, repo_id: str) -> None:
        self.repo_id = repo_id
        self.path = os.path.join(repo_cache_dir(repo_id), "written")

    def ids(self) -> set[str]:
        """Recorded IDs; an unreadable or missing list is empty (files are re-read: safe)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return set()
        try:
            st = os.fstat(fd)
            if st.st_uid != os.geteuid() or st.st_mode & 0o022:
                return set()  # someone else could have written it (e.g. root with a user's $HOME)
            data = os.read(fd, MAX_BYTES)
        except OSError:
            return set()
        finally:
            os.close(fd)
        return {line for line in data.decode("ascii", "replace").split("\n") if _ID.match(line)}

    def record(self, snapshot_id: str, present: Iterable[str] | None = None) -> bool:
        """Add ``snapshot_id``; returns False if the list could not be written (never raises).

        With ``present`` (the repository's snapshot IDs), a long list is
        rewritten to keep only the snapshots that still exist.
        """
        if not _ID.match(snapshot_id):
            raise ValueError(f"bad snapshot id {snapshot_id!r}")
        try:
            repo_cache_dir(self.repo_id, create=True)
            if present is not None and _size(self.path) > COMPACT_AT:
                self._rewrite(self.ids() & set(present))
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(self.path, flags, 0o600)
            st = os.fstat(fd)
            if st.st_uid != os.geteuid() or st.st_mode & 0o022:  # untrusted content: start again
                os.close(fd)
                os.unlink(self.path)
                fd = os.open(self.path, flags | os.O_EXCL, 0o600)
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, f"{snapshot_id}\n".encode())
            finally:
                os.close(fd)
        except OSError:
            return False
        return True

    def _rewrite(self, keep: set[str]) -> None:
        tmp = f"{self.path}.tmp-{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview("".join(f"{i}\n" for i in sorted(keep)).encode())
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)


def _size(path: str) -> int:
    with contextlib.suppress(OSError):
        return os.stat(path, follow_symlinks=False).st_size
    return 0
