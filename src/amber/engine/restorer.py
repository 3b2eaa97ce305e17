"""The restorer: trees back into files, packs read in parallel.

Files are created at their final size first; blobs are then written with
``pwrite`` at their offsets, pack by pack, on a thread pool. All-zero chunks,
and aligned 4 KiB zero blocks inside other chunks, are never written, so they
stay holes: sparse files come back sparse.
Metadata is applied once a file's last blob lands; directories get theirs
last, deepest first, so read-only directories can still be filled.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
import threading
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from amber.cancel import CancelToken
from amber.engine.metadata import apply_metadata
from amber.engine.patterns import PathMatcher
from amber.engine.progress import NullProgress, Progress
from amber.engine.treewalk import TreeLoader
from amber.errors import AmberError, IntegrityError
from amber.repository import Location, Node


class BlobSource(Protocol):
    def locate(self, blob_id: bytes) -> Location: ...

    def load_from_pack(
        self, pack: str, wanted: list[tuple[bytes, Location]]
    ) -> Iterator[tuple[bytes, bytes | IntegrityError]]: ...


@dataclass
class RestoreOptions:
    include: PathMatcher = field(default_factory=lambda: PathMatcher([]))
    exclude: PathMatcher = field(default_factory=lambda: PathMatcher([]))
    verify: bool = False
    workers: int = min(4, max(2, os.cpu_count() or 2))  # more only add GIL hand-offs


@dataclass
class RestoreResult:
    files: int = 0
    dirs: int = 0
    bytes: int = 0
    verified: int = 0
    errors: list[str] = field(default_factory=list)
    damaged: int = 0  # files whose stored data was missing or corrupt (a subset of errors)
    warnings: list[str] = field(default_factory=list)


_BATCH_FILES = 8192
_BATCH_BYTES = 1 << 30


@dataclass(slots=True)
class _File:
    path: bytes
    node: Node
    remaining: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    failed: bool = False
    created: bool = False


class Restorer:
    def __init__(
        self, trees: TreeLoader, blobs: BlobSource, options: RestoreOptions | None = None,
        progress: Progress | None = None, cancel: CancelToken | None = None,
    ) -> None:  # fmt: skip
        self._trees = trees
        self._cancel = (cancel or CancelToken()).watch()
        self._blobs = blobs
        self._opts = options or RestoreOptions()
        self._progress = progress or NullProgress()
        self._result = RestoreResult()
        self._lock = threading.Lock()

    def restore(self, items: Iterator[tuple[bytes, Node]], target: bytes) -> RestoreResult:
        """Restore (relative path, node) pairs, parents before children, under target."""
        os.makedirs(target, exist_ok=True)
        dirs: list[tuple[bytes, Node]] = []
        links: list[tuple[bytes, bytes, Node]] = []
        first_link: dict[tuple[int, int], bytes] = {}
        files: list[_File] = []
        batch_bytes = 0
        for rel, node in self._select(items):
            self._cancel.check()  # a safe point: finished files stay
            path = target + rel
            if node.damaged:  # `repair snapshots` kept what survived of it
                self._result.warnings.append(
                    f"{os.fsdecode(path)}: damaged in the repository; restored what survived"
                )
            try:
                if node.type == "dir":
                    _clear_for_dir(path)
                    os.makedirs(path, mode=0o700, exist_ok=True)
                    dirs.append((path, node))
                    self._result.dirs += 1
                elif node.type == "file":
                    key = (node.device, node.inode)
                    if node.links > 1 and key in first_link:
                        links.append((first_link[key], path, node))
                        continue
                    if node.links > 1:
                        first_link[key] = path
                    if node.content:
                        files.append(_File(path, node, len(node.content)))  # created by a worker
                        batch_bytes += node.size
                        if len(files) >= _BATCH_FILES or batch_bytes >= _BATCH_BYTES:
                            self._write_contents(files)  # bounded memory for any tree size
                            files, batch_bytes = [], 0
                    else:
                        self._create_empty(path, node)
                else:
                    self._create_special(path, node)
            except OSError as exc:
                self._error(path, f"cannot create: {exc.strerror}")
        self._write_contents(files)
        for source, path, _node in links:
            try:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                os.link(source, path)
                self._result.files += 1
            except OSError as exc:
                self._error(path, f"cannot hardlink: {exc.strerror}")
        for path, node in sorted(dirs, key=lambda d: d[0].count(b"/"), reverse=True):
            apply_metadata(path, node, self._result.warnings)
        return self._result

    # -- selection --------------------------------------------------------
    def _select(self, items: Iterator[tuple[bytes, Node]]) -> Iterator[tuple[bytes, Node]]:
        """Apply include/exclude; with includes, emit parent dirs only when needed."""
        inc, exc = self._opts.include, self._opts.exclude
        skip_under: bytes | None = None
        included_under: bytes | None = None
        pending_dirs: list[tuple[bytes, Node]] = []
        for rel, node in items:
            if skip_under is not None and rel.startswith(skip_under):
                continue
            skip_under = None
            if exc and exc.matches(rel, node.name):
                if node.type == "dir":
                    skip_under = rel + b"/"
                continue
            if not inc:
                yield rel, node
                continue
            if included_under is not None and not rel.startswith(included_under):
                included_under = None
            while pending_dirs and not rel.startswith(pending_dirs[-1][0] + b"/"):
                pending_dirs.pop()
            if included_under is not None or inc.matches(rel, node.name):
                yield from pending_dirs
                pending_dirs.clear()
                yield rel, node
                if node.type == "dir" and included_under is None:
                    included_under = rel + b"/"
            elif node.type == "dir":
                pending_dirs.append((rel, node))

    # -- creation ---------------------------------------------------------
    def _create_empty(self, path: bytes, node: Node) -> None:
        fd = _open_new(path, node.size)
        try:
            warnings: list[str] = []
            apply_metadata(path, node, warnings, fd)
        finally:
            os.close(fd)
        f = _File(path, node, 0, created=True)
        self._file_done(f, warnings)

    def _create_special(self, path: bytes, node: Node) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        if node.type == "symlink":
            os.symlink(node.link_target, path)
        elif node.type == "fifo":
            os.mkfifo(path, 0o600)
        elif node.type in ("chardev", "blockdev"):
            kind = stat.S_IFCHR if node.type == "chardev" else stat.S_IFBLK
            os.mknod(path, kind | 0o600, node.rdev)
        apply_metadata(path, node, self._result.warnings)
        self._result.files += 1

    # -- contents ---------------------------------------------------------
    def _write_contents(self, files: list[_File]) -> None:
        by_pack: dict[str, dict[bytes, Location]] = defaultdict(dict)
        targets: dict[bytes, list[tuple[_File, int]]] = defaultdict(list)
        for f in files:
            offset = 0
            for blob_id in f.node.content:
                try:
                    loc = self._blobs.locate(blob_id)
                except AmberError as exc:
                    self._fail(f, str(exc), damaged=True)
                    break
                by_pack[loc.pack][blob_id] = loc
                targets[blob_id].append((f, offset))
                offset += loc.plain_length
        with ThreadPoolExecutor(self._opts.workers, thread_name_prefix="restorer") as pool:
            for fut in [
                pool.submit(self._restore_pack, pack, list(wanted.items()), targets)
                for pack, wanted in by_pack.items()
            ]:
                fut.result()

    def _restore_pack(
        self, pack: str, wanted: list[tuple[bytes, Location]],
        targets: dict[bytes, list[tuple[_File, int]]],
    ) -> None:  # fmt: skip
        """Stream one pack's blobs into their files; at most one decoded blob is held."""
        self._cancel.check()
        delivered: set[bytes] = set()
        try:
            for blob_id, data in self._blobs.load_from_pack(pack, wanted):
                delivered.add(blob_id)
                self._deliver(targets[blob_id], data)
        except AmberError as exc:
            for blob_id, _ in wanted:
                if blob_id not in delivered:
                    self._deliver(targets[blob_id], IntegrityError(str(exc)))

    def _deliver(self, places: list[tuple[_File, int]], data: bytes | IntegrityError) -> None:
        for f, offset in places:
            if isinstance(data, IntegrityError):
                self._fail(f, f"damaged data: {data}", damaged=True)
            elif f.remaining == 1 and len(f.node.content) == 1:
                self._write_whole(f, data)
            else:
                self._write(f, offset, data)

    def _write_whole(self, f: _File, data: bytes) -> None:
        """The common case, a one-blob file: create, write and set metadata on one descriptor."""
        if f.failed:
            return
        warnings: list[str] = []
        try:
            fd = _open_new(f.path, f.node.size)
            try:
                _pwrite_nonzero(fd, data, 0)
                if not self._opts.verify:
                    apply_metadata(f.path, f.node, warnings, fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self._fail(f, f"write failed: {exc.strerror}")
            return
        f.remaining = 0
        self._progress.bytes_done(len(data))
        if self._opts.verify:
            self._file_complete(f)
        else:
            self._file_done(f, warnings)

    def _write(self, f: _File, offset: int, data: bytes) -> None:
        if f.failed:
            return
        try:
            with f.lock:
                if not f.created:
                    os.close(_open_new(f.path, f.node.size))
                    f.created = True
            if not _is_zero(data):
                fd = os.open(f.path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                try:
                    _pwrite_nonzero(fd, data, offset)
                finally:
                    os.close(fd)
        except OSError as exc:
            self._fail(f, f"write failed: {exc.strerror}")
            return
        self._progress.bytes_done(len(data))
        with f.lock:
            f.remaining -= 1
            done = f.remaining == 0
        if done:
            self._file_complete(f)

    def _file_complete(self, f: _File) -> None:
        if self._opts.verify and not self._verify(f):
            return
        warnings: list[str] = []
        apply_metadata(f.path, f.node, warnings)
        self._file_done(f, warnings)

    def _file_done(self, f: _File, warnings: list[str]) -> None:
        with self._lock:
            self._result.warnings.extend(warnings)
            self._result.files += 1
            self._result.bytes += f.node.size
        self._progress.file_done(f.path, f.node.size, "restored")

    def _verify(self, f: _File) -> bool:
        h = hashlib.sha256()
        with open(f.path, "rb", buffering=0) as fh:
            while chunk := fh.read(4 << 20):
                h.update(chunk)
        if f.node.sha256 and h.digest() != f.node.sha256:
            self._fail(f, "SHA-256 of restored file does not match the snapshot", damaged=True)
            return False
        with self._lock:
            self._result.verified += 1
        return True

    def _fail(self, f: _File, why: str, damaged: bool = False) -> None:
        with f.lock:
            if f.failed:
                return
            f.failed = True
        if damaged:
            with self._lock:
                self._result.damaged += 1
        self._error(f.path, why)

    def _error(self, path: bytes, why: str) -> None:
        with self._lock:
            self._result.errors.append(f"{os.fsdecode(path)}: {why}")
        self._progress.error(path, why)


def _open_new(path: bytes, size: int) -> int:
    """Create (or truncate) a regular file at its final size; never through a symlink."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.EISDIR):
            raise
        if stat.S_ISDIR(os.lstat(path).st_mode):
            shutil.rmtree(path)
        else:
            os.unlink(path)  # a symlink in the way
        fd = os.open(path, flags, 0o600)
    if size:
        os.ftruncate(fd, size)
    return fd


def _pwrite_nonzero(fd: int, data: bytes, offset: int) -> None:
    for start, end in _nonzero_extents(data, offset):
        view, pos = memoryview(data)[start:end], offset + start
        while view:
            n = os.pwrite(fd, view, pos)
            view, pos = view[n:], pos + n


def _clear_for_dir(path: bytes) -> None:
    """Remove a symlink or file where a directory goes: never restore through a symlink."""
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            os.unlink(path)


def _is_zero(data: bytes) -> bool:
    return data[:1] == b"\0" and data[-1:] == b"\0" and data == bytes(len(data))


_BLOCK = 4096
_ZERO_BLOCK = bytes(_BLOCK)


def _nonzero_extents(data: bytes, offset: int) -> Iterator[tuple[int, int]]:
    """(start, end) ranges of ``data`` to write, leaving file-block-aligned zero runs as holes.

    A chunk that is only partly zero (data followed by a long zero run: chunkers
    cut zero runs at their maximum size) would otherwise fill the hole.
    """
    if _ZERO_BLOCK not in data:  # fast path: no aligned or unaligned zero block at all
        yield 0, len(data)
        return
    pos = -offset % _BLOCK  # first block boundary of the file inside data
    start = 0
    while pos + _BLOCK <= len(data):
        if data[pos] == 0 and data[pos : pos + _BLOCK] == _ZERO_BLOCK:
            if pos > start:
                yield start, pos
            start = pos + _BLOCK
        pos += _BLOCK
    if start < len(data):
        yield start, len(data)
