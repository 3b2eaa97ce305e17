"""Serving a :class:`MountFS` through the kernel with mfusepy (libfuse from the system).

mfusepy hands paths over as text decoded with ``surrogateescape``; they are turned
back into the raw bytes the view works with. The mount is read-only, and
``default_permissions`` makes the kernel apply the recorded owners and modes.
libfuse ends the loop and unmounts on SIGINT, SIGTERM and ``fusermount3 -u``.
"""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

from amber.catalog.mountfs import Attr, MountFS
from amber.errors import AmberError, MountFailed, NotFound, ObjectNotFound

F = TypeVar("F", bound=Callable[..., Any])
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


def load_fuse() -> ModuleType:
    """mfusepy, or a clear error: it loads libfuse when imported."""
    try:
        import mfusepy
    except ImportError as exc:
        raise MountFailed("amber mount needs mfusepy, which is not installed: pip install mfusepy") from exc
    except OSError as exc:  # no libfuse on this system
        raise MountFailed(f"no FUSE library found ({exc}): install fuse3") from exc
    module: ModuleType = mfusepy
    return module


def _raw(path: str) -> bytes:
    return path.encode("utf-8", "surrogateescape")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def stat_dict(attr: Attr) -> dict[str, int]:
    return {
        "st_mode": attr.st_mode, "st_nlink": 2 if attr.kind == "dir" else 1, "st_size": attr.size,
        "st_mtime": attr.mtime_ns, "st_atime": attr.atime_ns, "st_ctime": attr.ctime_ns,
        "st_uid": attr.uid, "st_gid": attr.gid, "st_rdev": attr.rdev, "st_blksize": 128 * 1024,
        "st_blocks": (attr.size + 511) // 512,
    }  # fmt: skip


def _errors(method: F) -> F:
    """A path that is not there is ENOENT; other amber errors EIO, with the reason told to the user."""

    @functools.wraps(method)
    def wrapped(self: Operations, *args: Any) -> Any:
        try:
            return method(self, *args)
        except ObjectNotFound as exc:  # a pack or blob is missing: damage, not a wrong path
            self.notice(f"{method.__name__}: {exc.message}")
            raise OSError(errno.EIO, exc.message) from exc
        except NotFound as exc:
            raise OSError(errno.ENOENT, str(exc)) from exc
        except AmberError as exc:
            self.notice(f"{method.__name__}: {exc.message}")
            raise OSError(errno.EIO, exc.message) from exc

    return wrapped  # type: ignore[return-value]


class Operations:
    """The callbacks mfusepy looks up by name; every failure becomes an errno."""

    use_ns = True  # times in nanoseconds

    def __init__(self, fs: MountFS, on_ready: Callable[[], None], notice: Callable[[str], None]) -> None:
        self.fs = fs
        self._on_ready = on_ready
        self.notice = notice

    def init(self, path: str) -> None:
        self._on_ready()

    @_errors
    def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
        return stat_dict(self.fs.getattr(_raw(path)))

    @_errors
    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *(_text(name) for name in self.fs.readdir(_raw(path)))]

    @_errors
    def readlink(self, path: str) -> str:
        return _text(self.fs.readlink(_raw(path)))

    @_errors
    def open(self, path: str, flags: int) -> int:
        if flags & _WRITE_FLAGS:
            raise OSError(errno.EROFS, "read-only")
        return self.fs.open(_raw(path))

    @_errors
    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return self.fs.read_handle(fh, offset, size)

    def release(self, path: str, fh: int) -> int:
        self.fs.release(fh)
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        return {"f_bsize": 128 * 1024, "f_frsize": 128 * 1024, "f_namemax": 255}


_SIGNALLED = "8"  # libfuse 3: the loop ended with an error; a signal (SIGINT, SIGTERM) ends it so


def serve(fs: MountFS, mountpoint: str, allow_other: bool, on_ready: Callable[[], None],
          notice: Callable[[str], None], threaded: bool = True) -> None:  # fmt: skip
    """Mount and answer requests until unmounted or stopped by SIGINT or SIGTERM.

    ``threaded=False`` answers requests one at a time on one thread: for a local
    repository that is faster (no hand-off between libfuse's threads and the GIL; a
    read waits on a local disk only), while a remote one gains from overlapping reads.
    """
    fuse = load_fuse()
    options: dict[str, Any] = {
        "foreground": True, "ro": True, "fsname": "amber", "subtype": "amber",
        "default_permissions": True,
        # Snapshots never change: the kernel may keep names and attributes for a minute,
        # and file contents in its page cache across opens (kernel_cache). `latest`
        # stays current (a symlink's target is read on every use).
        "entry_timeout": 60, "attr_timeout": 60, "kernel_cache": True,
    }  # fmt: skip
    if allow_other:
        options["allow_other"] = True
    if not threaded:
        options["nothreads"] = True
    mounted = False

    def ready() -> None:
        nonlocal mounted
        mounted = True
        on_ready()

    try:
        fuse.FUSE(Operations(fs, ready, notice), mountpoint, **options)
    except RuntimeError as exc:  # fuse_main failed (libfuse printed why), or a signal stopped it
        if mounted and str(exc) == _SIGNALLED:
            return
        raise MountFailed(f"mounting at {mountpoint} failed (libfuse status {exc})") from exc
