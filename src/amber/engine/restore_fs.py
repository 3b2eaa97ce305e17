"""Confined creation in a restore target: every entry is made relative to an open directory.

No path is ever resolved from the target down. Each directory a restore enters
is opened with ``O_NOFOLLOW | O_DIRECTORY`` relative to its parent's descriptor
and remembered by (st_dev, st_ino). Only a few descriptors stay open (an LRU);
an evicted one is reopened the same way, one component at a time, and must
still be the same directory. A symlink or another directory swapped in on the
way is refused, so nothing is written outside the target, whoever else can
write in it. The target path itself is the user's choice and is followed as given.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from amber.errors import AmberError, InvalidName
from amber.repository.model import validate_name

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_OPEN = 1024  # directory descriptors kept open besides the target's (the rlimit may allow fewer)


def bad_name(name: bytes) -> str:
    """Why ``name`` cannot be an entry of a directory ("" when it can).

    Trees are validated when decoded; restore checks again so that a bad
    tree can never make it leave its target.
    """
    try:
        validate_name(name)
    except InvalidName as exc:
        return exc.message
    return ""


@dataclass(eq=False, slots=True)
class Dir:
    """A directory restore made or entered: its parent, its name there, and its identity."""

    parent: Dir | None
    name: bytes
    dev: int
    ino: int
    depth: int
    made: bool = False  # restore made it empty: nothing can be in the way but what races us


class TargetTree:
    """Directory handles under one target; thread-safe. Use :meth:`fd` for a parent descriptor."""

    def __init__(self, target: bytes, max_open: int | None = None) -> None:
        """``max_open``: descriptors kept open (default: enough for the directories of the
        batch being written and of the one the walk collects, within a quarter of the rlimit)."""
        if max_open is None:
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            max_open = _MAX_OPEN if soft == resource.RLIM_INFINITY else min(_MAX_OPEN, soft // 4)
        os.makedirs(target, exist_ok=True)
        root_fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        st = os.fstat(root_fd)
        self.root = Dir(None, b"", st.st_dev, st.st_ino, 0)
        self._root_fd = root_fd
        self._open: OrderedDict[Dir, int] = OrderedDict()
        self._pins: dict[Dir, int] = {}  # descriptors in use outside the lock are not evicted
        self._max = max(2, max_open)
        self._lock = threading.Lock()
        self._euid = os.geteuid()

    def close(self) -> None:
        with self._lock:
            for fd in self._open.values():
                os.close(fd)
            self._open.clear()
            if self._root_fd >= 0:
                os.close(self._root_fd)
                self._root_fd = -1

    @contextlib.contextmanager
    def fd(self, d: Dir) -> Iterator[int]:
        """The descriptor of ``d``, valid inside the block only; the block runs without the lock.

        Raises AmberError when ``d`` cannot be reached as the directory restore made.
        """
        fd = self.pin(d)
        try:
            yield fd
        finally:
            self.unpin(d)

    def pin(self, d: Dir) -> int:
        """:meth:`fd` for hot paths: the descriptor stays open until :meth:`unpin` (call it in a finally)."""
        with self._lock:
            fd = self._get(d)
            pins = self._pins
            pins[d] = pins.get(d, 0) + 1
            return fd

    def unpin(self, d: Dir) -> None:
        with self._lock:
            pins = self._pins
            n = pins[d]
            if n > 1:
                pins[d] = n - 1
            else:
                del pins[d]
                if len(self._open) > self._max:
                    self._trim()

    def enter(self, parent: Dir, name: bytes) -> Dir:
        """The real directory ``name`` in ``parent``, made when absent.

        A non-directory in the way is removed (that entry only). Raises
        AmberError or OSError when no real directory can be had there.
        """
        pfd = self.pin(parent)  # the system calls run without the lock: workers need it meanwhile
        try:
            made = False
            existing = None if parent.made else lstat_at(pfd, name)
            if existing is not None and not stat.S_ISDIR(existing.st_mode):
                os.unlink(name, dir_fd=pfd)
                existing = None
            if existing is None:
                os.mkdir(name, 0o700, dir_fd=pfd)
                made = True
            try:
                fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise AmberError("replaced by a non-directory during restore") from exc
                raise
        finally:
            self.unpin(parent)
        st = os.fstat(fd)
        if made and st.st_uid != self._euid:  # ours was swapped for someone else's directory
            os.close(fd)
            raise AmberError("replaced by another directory during restore")
        d = Dir(parent, name, st.st_dev, st.st_ino, parent.depth + 1, made)
        with self._lock:
            self._remember(d, fd)
        return d

    def link(self, src: Dir, src_name: bytes, src_ino: int, dst: Dir, dst_name: bytes) -> None:
        """Hard-link the file restore made as ``src_name`` (inode ``src_ino``) to ``dst_name``.

        The source is pinned with ``O_PATH | O_NOFOLLOW`` and linked through its
        ``/proc/self/fd`` link, so exactly that inode is linked, whatever was
        renamed in meanwhile.
        """
        with self._lock:
            sfd = os.open(src_name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self._get(src))
            try:
                st = os.fstat(sfd)
                if not stat.S_ISREG(st.st_mode) or st.st_ino != src_ino:
                    raise AmberError("its first link was replaced during restore")
                dfd = self._get(dst)
                if why := clear_entry(dfd, dst_name):
                    raise AmberError(why)
                os.link(f"/proc/self/fd/{sfd}", dst_name, dst_dir_fd=dfd, follow_symlinks=True)
            finally:
                os.close(sfd)

    # -- descriptors --------------------------------------------------------
    def _get(self, d: Dir) -> int:
        if d is self.root:
            return self._root_fd
        fd = self._open.get(d)
        if fd is not None:
            self._open.move_to_end(d)
            return fd
        chain: list[Dir] = []
        cur: Dir | None = d
        while cur is not None and cur is not self.root and cur not in self._open:
            chain.append(cur)
            cur = cur.parent
        fd = self._root_fd if cur is None or cur is self.root else self._open[cur]
        for child in reversed(chain):
            fd = self._reopen(fd, child)
        return fd

    def _reopen(self, parent_fd: int, d: Dir) -> int:
        try:
            fd = os.open(d.name, _DIR_FLAGS, dir_fd=parent_fd)
        except OSError as exc:
            raise AmberError(f"directory changed during restore ({exc.strerror})") from exc
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (d.dev, d.ino):
            os.close(fd)
            raise AmberError("no longer the directory restore created")
        self._remember(d, fd)
        return fd

    def _remember(self, d: Dir, fd: int) -> None:
        self._open[d] = fd
        self._trim()

    def _trim(self) -> None:
        """Close the least recently used descriptors beyond the limit, except those in use."""
        excess = len(self._open) - self._max
        if excess <= 0:
            return
        victims = []
        for d in self._open:  # least recently used first; stop at the first ``excess`` unpinned
            if d not in self._pins:
                victims.append(d)
                if len(victims) == excess:
                    break
        for d in victims:
            os.close(self._open.pop(d))


def lstat_at(dir_fd: int, name: bytes) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def clear_entry(dir_fd: int, name: bytes) -> str:
    """Remove exactly the entry ``name`` if there is one; why not when it must stay ("" when done).

    An empty directory is removed; a non-empty one is never emptied.
    """
    st = lstat_at(dir_fd, name)
    if st is None:
        return ""
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return ""
    try:
        os.rmdir(name, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            return "a non-empty directory is in the way"
        raise
    return ""


def open_beneath(target: bytes, rel: bytes) -> int:
    """Open the file at ``rel`` (``/a/b``) under ``target`` read-only, following no symlink.

    For reading a restore back (drills): raises OSError, FileNotFoundError for a name
    that restore would never have made.
    """
    parts = rel.split(b"/")[1:]
    if not parts or any(bad_name(p) for p in parts):
        raise FileNotFoundError(errno.ENOENT, "not restored")
    fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
        return os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
    finally:
        os.close(fd)
