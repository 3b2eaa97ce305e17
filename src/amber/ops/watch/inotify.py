"""Watching a job's paths with inotify and turning its events into marks (engine/changedpaths.py).

inotify watches one directory at a time, so every directory below a backup
path gets a watch (excluded ones and, with ``one_file_system``, other
filesystems aside). A directory created or moved in is watched as soon as its
event arrives and is marked whole: files made in it before its watch existed
raised no event. A directory moved away loses its watches (inotify would
otherwise report it under its old path). A backup path that is a file is seen
through its directory's watch, so an editor's save-by-rename is not lost.

Two things end precise watching, and the caller rescans: the kernel's queue
overflowing (``IN_Q_OVERFLOW``: events were dropped), and running out of
watches (``fs.inotify.max_user_watches``), after which the caller falls back
to periodic full scans.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from inotify_simple import INotify
from inotify_simple import flags as F

from amber.engine.changedpaths import ChangedPaths

_DIR_MASK = (F.CREATE | F.DELETE | F.MODIFY | F.ATTRIB | F.CLOSE_WRITE | F.MOVED_FROM | F.MOVED_TO
             | F.DELETE_SELF | F.MOVE_SELF | F.DONT_FOLLOW | F.EXCL_UNLINK | F.ONLYDIR)  # fmt: skip
_SELF = F.DELETE_SELF | F.MOVE_SELF | F.ATTRIB

Excluded = Callable[[bytes, bytes], bool] | None


class WatchLimit(Exception):
    """No more inotify watches (or instances) can be had: precise watching is over."""


@dataclass
class ReadResult:
    events: int = 0
    overflow: bool = False  # the kernel dropped events: everything must be rescanned


class TreeWatcher:
    """inotify watches on every directory of ``roots`` (recorded, absolute paths)."""

    def __init__(
        self, roots: Iterable[str], excluded: Excluded = None, one_file_system: bool = False,
        max_watches: int | None = None,
    ) -> None:  # fmt: skip
        """``max_watches``: stop at this many (besides the kernel's own limit), as if it were the limit."""
        self._excluded = excluded
        self._one_fs = one_file_system
        self._max = max_watches
        self._path: dict[int, bytes] = {}  # wd -> watched directory
        self._wd: dict[bytes, int] = {}
        self._only: dict[int, set[bytes]] = {}  # wd -> the file names that count (file roots' directories)
        self._whole: set[int] = set()  # wds whose every entry counts
        try:
            self._ino = INotify(nonblocking=True)
        except OSError as exc:
            raise WatchLimit(f"cannot start inotify: {exc.strerror}") from exc
        self.roots = [os.fsencode(os.path.abspath(r)) for r in roots]
        try:
            for root in self.roots:
                self._watch_root(root)
        except BaseException:
            self.close()
            raise

    @property
    def watches(self) -> int:
        return len(self._path)

    def fileno(self) -> int:
        return int(self._ino.fileno())

    def close(self) -> None:
        self._ino.close()

    def wait(self, timeout: float | None, wake_fd: int | None = None) -> None:
        """Block until events arrive, ``wake_fd`` is readable, or ``timeout`` seconds pass."""
        poller = select.poll()
        poller.register(self.fileno(), select.POLLIN)
        if wake_fd is not None:
            poller.register(wake_fd, select.POLLIN)
        poller.poll(None if timeout is None else max(0, int(timeout * 1000)))

    def read(self, changes: ChangedPaths) -> ReadResult:
        """Mark what the queued events name; never blocks. May raise WatchLimit (new directories)."""
        result = ReadResult()
        for event in self._ino.read(timeout=0):
            result.events += 1
            if event.mask & F.Q_OVERFLOW:
                result.overflow = True
                continue
            self._apply(event.wd, event.mask, os.fsencode(event.name), changes)
        return result

    # -- internals ----------------------------------------------------------
    def _apply(self, wd: int, mask: int, name: bytes, changes: ChangedPaths) -> None:
        directory = self._path.get(wd)
        if directory is None:
            return  # a watch already dropped (its directory moved away or was deleted)
        if mask & F.IGNORED:
            self._drop(wd)
            return
        if not name:
            if mask & _SELF and wd in self._whole:
                changes.add(directory)  # the directory itself: renamed, deleted or its metadata changed
            return
        only = self._only.get(wd)
        if wd not in self._whole and (only is None or name not in only):
            return
        path = directory.rstrip(b"/") + b"/" + name
        if self._excluded is not None and self._excluded(path, name):
            return
        if mask & F.ISDIR and mask & (F.CREATE | F.MOVED_TO):
            changes.add_tree(path)
            self._watch_tree(path)
        else:
            if mask & F.ISDIR and mask & F.MOVED_FROM:
                self._forget(path)
            changes.add(path)

    def _watch_root(self, root: bytes) -> None:
        try:
            st = os.lstat(root)
        except FileNotFoundError:
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode):
            self._watch_tree(root)
            return
        # a file (or missing) backup path: its directory's events for its name
        parent, name = os.path.split(root)
        wd = self._add(parent, whole=False)
        if wd is not None:
            self._only.setdefault(wd, set()).add(name)

    def _watch_tree(self, top: bytes) -> None:
        """Watch ``top`` and every directory below it that the backup enters."""
        try:
            dev = os.lstat(top).st_dev
        except OSError:
            return  # gone already: its mark makes the backup look
        stack = [top]
        while stack:
            path = stack.pop()
            if self._add(path, whole=True) is None:
                continue
            try:
                with os.scandir(path) as it:
                    for entry in it:
                        if not entry.is_dir(follow_symlinks=False):
                            continue
                        child = os.fsencode(entry.path)
                        if self._excluded is not None and self._excluded(child, os.fsencode(entry.name)):
                            continue
                        if self._one_fs and entry.stat(follow_symlinks=False).st_dev != dev:
                            continue
                        stack.append(child)
            except OSError:
                continue  # unreadable or vanished: the backup reports what it cannot read

    def _add(self, path: bytes, whole: bool) -> int | None:
        """A watch on directory ``path``; None when it vanished or cannot be watched (permissions)."""
        if self._max is not None and len(self._path) >= self._max and path not in self._wd:
            raise WatchLimit(f"more than {self._max} directories to watch")
        try:
            wd = int(self._ino.add_watch(path, _DIR_MASK))
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise WatchLimit("the inotify watch limit (fs.inotify.max_user_watches) is reached") from exc
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EACCES, errno.ELOOP):
                return None
            raise WatchLimit(f"cannot watch {os.fsdecode(path)}: {exc.strerror}") from exc
        old = self._path.get(wd)
        if old is not None and old != path and self._wd.get(old) == wd:
            del self._wd[old]  # the same directory under a new name
        self._path[wd] = path
        self._wd[path] = wd
        if whole:
            self._whole.add(wd)
        return wd

    def _drop(self, wd: int) -> None:
        path = self._path.pop(wd, None)
        if path is not None and self._wd.get(path) == wd:  # the path may be watched anew meanwhile
            del self._wd[path]
        self._only.pop(wd, None)
        self._whole.discard(wd)

    def _forget(self, top: bytes) -> None:
        """Remove the watches of ``top`` and below: it moved, and its events would name old paths."""
        prefix = top + b"/"
        for wd in [wd for wd, p in self._path.items() if p == top or p.startswith(prefix)]:
            self._drop(wd)
            with contextlib.suppress(OSError):  # already gone
                self._ino.rm_watch(wd)
