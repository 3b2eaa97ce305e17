"""A repository in a local directory (also USB disks and mounted NAS shares).

Directories are created 0700 and files 0600; the first write of a process also
makes the root 0700, which tightens repositories created by older versions.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from amber.errors import AmberError, ObjectNotFound, from_os_error
from amber.storage.base import FileInfo, FileType, Handle
from amber.storage.layout import bounded_length, object_path
from amber.storage.mapped import MappedRange, map_file_range

_DIRS = [t.value for t in FileType if t is not FileType.CONFIG]
_TMP_PREFIX = ".tmp-"
DIR_MODE = 0o700  # restic's modes: only the owner may list or read a repository
FILE_MODE = 0o600


class LocalBackend:
    """Files under ``root``; packs are fanned out into 256 subdirectories."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().absolute()
        self.location = str(self.root)
        self._base = str(self.root)
        self._private = False  # the root has been made 0700 by this process

    # -- layout -----------------------------------------------------------
    def _path(self, handle: Handle) -> Path:
        return Path(self._file(handle))

    def _file(self, handle: Handle) -> str:
        return f"{self._base}/{object_path(handle)}"

    def create(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
            self._make_private()
            for d in _DIRS:
                (self.root / d).mkdir(exist_ok=True, mode=DIR_MODE)
            for i in range(256):
                (self.root / "data" / f"{i:02x}").mkdir(exist_ok=True, mode=DIR_MODE)
            _fsync_dir(self.root / "data")
            _fsync_dir(self.root)
        except OSError as exc:
            raise from_os_error(exc, self.location) from exc

    def _make_private(self) -> None:
        """The root 0700 (once per process): other local users cannot even list the repository.

        Older repositories were created 0755; the first write tightens them. A
        root this user does not own (a shared mount) is left as it is.
        """
        try:
            os.chmod(self.root, DIR_MODE)
        except FileNotFoundError:
            return
        except PermissionError:
            pass
        self._private = True

    def exists(self) -> bool:
        return (self.root / "config").is_file()

    # -- objects ----------------------------------------------------------
    def save(self, handle: Handle, data: bytes | bytearray | memoryview) -> None:
        """Write atomically: temp file, fsync, rename, fsync the directory."""
        path = self._path(handle)
        tmp = path.with_name(f"{_TMP_PREFIX}{path.name}-{secrets.token_hex(4)}")
        try:
            if not self._private:
                self._make_private()
            path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            try:
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise from_os_error(exc, _describe(handle)) from exc

    def load(
        self, handle: Handle, offset: int = 0, length: int | None = None, *, limit: int | None = None
    ) -> bytes:
        # os-level calls: a tree load is one small ranged read, and a file object per
        # read costs more than the read itself.
        try:
            fd = os.open(self._file(handle), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"{_describe(handle)} does not exist") from exc
        except OSError as exc:
            raise from_os_error(exc, _describe(handle)) from exc
        try:
            # the size of the file opened, not of the name: the read is bounded by it
            length = bounded_length(handle, os.fstat(fd).st_size, offset, length, limit)
            data = os.pread(fd, length, offset)
            if len(data) < length:  # a short read: read on until the end of the file
                parts = [data]
                while (got := sum(map(len, parts))) < length:
                    more = os.pread(fd, length - got, offset + got)
                    if not more:
                        break
                    parts.append(more)
                data = b"".join(parts)
            return data
        except OSError as exc:
            raise from_os_error(exc, _describe(handle)) from exc
        finally:
            os.close(fd)

    def map_range(self, handle: Handle, offset: int, length: int) -> MappedRange | None:
        """``mapped.RangeMapper``, for processes that may map (``storage.mapped``)."""
        return map_file_range(self._file(handle), offset, length)

    def stat(self, handle: Handle) -> FileInfo:
        try:
            st = self._path(handle).stat()
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"{_describe(handle)} does not exist") from exc
        except OSError as exc:
            raise from_os_error(exc, _describe(handle)) from exc
        return FileInfo(handle.name, st.st_size)

    def list(self, type: FileType) -> Iterator[FileInfo]:
        if type is FileType.CONFIG:
            if self.exists():
                yield FileInfo("", (self.root / "config").stat().st_size)
            return
        base = self.root / type.value
        try:
            dirs = sorted(base.iterdir()) if type is FileType.PACK else [base]
            for d in dirs:
                if not d.is_dir():
                    continue
                try:
                    with os.scandir(d) as it:
                        for entry in it:
                            if entry.name.startswith("."):
                                continue
                            try:  # an object removed while we list is simply gone
                                if not entry.is_file(follow_symlinks=False):
                                    continue
                                size = entry.stat(follow_symlinks=False).st_size
                            except FileNotFoundError:
                                continue
                            yield FileInfo(entry.name, size)
                except FileNotFoundError:
                    continue  # the directory itself vanished
        except FileNotFoundError:
            return
        except OSError as exc:
            raise from_os_error(exc, str(base)) from exc

    def remove(self, handle: Handle) -> None:
        path = self._path(handle)
        try:
            path.unlink()
            _fsync_dir(path.parent)
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"{_describe(handle)} does not exist") from exc
        except OSError as exc:
            raise from_os_error(exc, _describe(handle)) from exc

    def close(self) -> None:
        pass


def _describe(handle: Handle) -> str:
    return handle.type.value if handle.type is FileType.CONFIG else f"{handle.type.value}/{handle.name}"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise from_os_error(exc, str(path)) from exc
    try:
        os.fsync(fd)
    except OSError as exc:  # some filesystems refuse fsync on directories
        if exc.errno not in (22, 95):  # EINVAL, EOPNOTSUPP
            raise
    finally:
        os.close(fd)


__all__ = ["AmberError", "LocalBackend"]
