"""File contents of a restore: packs read in parallel, blobs written at their offsets.

A new file is created (``O_CREAT | O_EXCL | O_NOFOLLOW`` in its directory's
descriptor) at its final size; blobs are then written with ``pwrite``, pack by
pack, on a thread pool. All-zero chunks, and aligned 4 KiB zero blocks inside
other chunks, are never written into a new file, so they stay holes.

A regular file already in the target is resumed (restic's ``verifyFile``): each
blob's range is read and hashed the way the repository computes blob IDs, and
only blobs that differ are fetched and written. It is truncated only when its
size differs. Every later open of a file, by any worker, goes through its
directory's descriptor and must find the same inode.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import stat
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from amber.cancel import CancelToken
from amber.engine.metadata import apply_to_fd
from amber.engine.restore_fresh import FreshWriter, is_fresh
from amber.engine.restore_fs import TargetTree
from amber.engine.restore_io import (
    CREATE_FLAGS,
    OPEN_FLAGS,
    BlobSource,
    Buffer,
    is_zero,
    pwrite,
    pwrite_nonzero,
    read_buffer,
)
from amber.engine.restore_report import Reporter, RestoreFile, Tally, failure
from amber.errors import AmberError, IntegrityError
from amber.repository import Location

_Todo = tuple[bytes, Location, int]  # blob id, where it is stored, offset in the file
BlobId = Callable[[bytes | memoryview], bytes]


class ContentWriter:
    def __init__(
        self, tree: TargetTree, blobs: BlobSource, blob_id: BlobId | None, verify: bool, workers: int,
        report: Reporter, cancel: CancelToken | None = None,
    ) -> None:  # fmt: skip
        self._cancel = cancel or CancelToken()
        self._tree = tree
        self._blobs = blobs
        self._blob_id = blob_id
        self._verify = verify
        self._workers = workers
        self._report = report

    def reporting_to(self, report: Reporter) -> ContentWriter:
        """This writer, counting into ``report`` instead (a forked worker's own)."""
        other = copy.copy(self)
        other._report = report
        return other

    @property
    def resumes(self) -> bool:
        """Existing files can be checked blob by blob (else they are replaced)."""
        return self._blob_id is not None

    def create_empty(self, f: RestoreFile) -> None:
        fd, st = self._create(f, final_mode=True)
        warnings: list[str] = []
        try:
            apply_to_fd(fd, f.node, warnings, f.path, made=st)
        finally:
            os.close(fd)
        self._report.file_done(f, warnings)

    def __enter__(self) -> ContentWriter:
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="restorer")
        self._pending: list[Future[None]] = []
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self.drain()
        finally:
            self._cancel_pending()
            self._pool.shutdown(wait=True)

    def write(self, files: list[RestoreFile]) -> None:
        """Start writing the contents of ``files`` (a batch); failures are reported per file.

        The walk goes on collecting the next batch meanwhile; at most one batch is
        in flight, so memory stays bounded (:meth:`drain` waits for it).
        """
        by_pack, targets = self._group(files, self._pool.map)  # existing files are read back on threads
        self.drain()
        self._pending = [
            self._pool.submit(self._restore_pack, pack, list(wanted.items()), targets)
            for pack, wanted in by_pack.items()
        ]

    def write_now(self, files: list[RestoreFile]) -> None:
        """Write the contents of ``files`` in the calling thread (a forked worker: no pool there).

        New one-blob files take the lean path (``restore_fresh``), unless every file is verified.
        """
        if not self._verify:
            fresh = [f for f in files if is_fresh(f)]
            if fresh:
                FreshWriter(self._tree, self._blobs, self._report, self._cancel).write(fresh)
                files = [f for f in files if not is_fresh(f)]
        by_pack, targets = self._group(files, map)
        for pack, wanted in by_pack.items():
            self._restore_pack(pack, list(wanted.items()), targets)

    def _group(
        self, files: list[RestoreFile], map_: Callable[..., Iterator[list[_Todo]]]
    ) -> tuple[dict[str, dict[bytes, Location]], dict[bytes, list[tuple[RestoreFile, int]]]]:
        """The blobs of ``files`` by pack, and where each goes; ``map_`` plans the existing files."""
        by_pack: dict[str, dict[bytes, Location]] = defaultdict(dict)
        targets: dict[bytes, list[tuple[RestoreFile, int]]] = defaultdict(list)

        def place(f: RestoreFile, todo: list[_Todo]) -> None:
            for blob_id, loc, offset in todo:
                by_pack[loc.pack][blob_id] = loc
                targets[blob_id].append((f, offset))

        existing = []
        for f in files:  # new files are planned while the batch in flight is still written
            if f.existing:
                existing.append(f)
            else:
                place(f, self._plan(f))
        for f, todo in zip(existing, map_(self._plan, existing), strict=True):
            place(f, todo)
        return by_pack, targets

    def drain(self) -> None:
        """Wait until the batch in flight is written; raises what a worker raised (a cancel)."""
        pending, self._pending = self._pending, []
        try:
            for fut in pending:
                fut.result()
        except BaseException:
            self._pending = pending
            raise

    def _cancel_pending(self) -> None:
        for fut in self._pending:
            fut.cancel()
        for fut in self._pending:
            if not fut.cancelled():
                with contextlib.suppress(BaseException):
                    fut.result()
        self._pending = []

    # -- planning and resume --------------------------------------------------
    def _plan(self, f: RestoreFile) -> list[_Todo]:
        """The blobs still to write into ``f``, at their offsets."""
        todo: list[_Todo] = []
        offset = 0
        for blob_id in f.node.content:
            try:
                loc = self._blobs.locate(blob_id)
            except AmberError as exc:
                self._report.fail(f, str(exc), damaged=True)
                return []
            todo.append((blob_id, loc, offset))
            offset += loc.plain_length
        if f.existing:
            try:
                todo = self._resume(f, todo)
            except (OSError, AmberError) as exc:
                self._report.fail(f, f"cannot resume: {failure(exc)}")
                return []
            if not todo:
                self._complete(f)
        f.remaining = len(todo)
        return todo

    def _resume(self, f: RestoreFile, blobs: list[_Todo]) -> list[_Todo]:
        assert self._blob_id is not None
        fd = self._open(f, os.O_RDONLY, expect_ino=False)
        try:
            st = os.fstat(fd)
            f.ino, f.created = st.st_ino, True
            todo = []
            for blob_id, loc, offset in blobs:
                n = loc.plain_length
                if offset + n <= st.st_size:
                    data = os.pread(fd, n, offset)
                    if len(data) == n and self._blob_id(data) == blob_id:
                        continue
                todo.append((blob_id, loc, offset))
        finally:
            os.close(fd)
        skipped = len(blobs) - len(todo)
        with self._report.lock:
            self._report.result.blobs_skipped += skipped
        self._report.progress.bytes_done(sum(loc.plain_length for _, loc, _ in blobs) - sum(
            loc.plain_length for _, loc, _ in todo))  # fmt: skip
        if st.st_size != f.node.size:
            fd = self._open(f, os.O_WRONLY)
            try:
                os.ftruncate(fd, f.node.size)
            finally:
                os.close(fd)
        f.fresh_from = min(st.st_size, f.node.size)
        return todo

    # -- writing ------------------------------------------------------------
    def _restore_pack(
        self, pack: str, wanted: list[tuple[bytes, Location]],
        targets: dict[bytes, list[tuple[RestoreFile, int]]],
    ) -> None:  # fmt: skip
        """Stream one pack's blobs into their files; at most one decoded blob is held."""
        self._cancel.check()
        delivered: set[bytes] = set()
        tally = self._report.tally()
        try:
            for blob_id, data in self._blobs.stream_from_pack(pack, wanted):
                delivered.add(blob_id)
                self._deliver(targets[blob_id], data, tally)
        except AmberError as exc:
            for blob_id, _ in wanted:
                if blob_id not in delivered:
                    self._deliver(targets[blob_id], IntegrityError(str(exc)), tally)
        finally:
            self._report.add(tally)

    def _deliver(
        self, places: list[tuple[RestoreFile, int]], data: Buffer | IntegrityError, tally: Tally
    ) -> None:
        for f, offset in places:
            if isinstance(data, IntegrityError):
                self._report.fail(f, f"damaged data: {data}", damaged=True)
            elif f.remaining == 1 and len(f.node.content) == 1 and not f.existing:
                self._write_whole(f, data, tally)
            else:
                self._write(f, offset, data, tally)

    def _write_whole(self, f: RestoreFile, data: Buffer, tally: Tally) -> None:
        """The common case, a new one-blob file: create, write and set metadata on one descriptor."""
        if f.failed:
            return
        warnings: list[str] = []
        try:
            fd, st = self._create(f, presize=False, final_mode=not self._verify)
            try:
                if pwrite_nonzero(fd, data, 0) < f.node.size:  # it ends in a hole
                    os.ftruncate(fd, f.node.size)
                if not self._verify:
                    apply_to_fd(fd, f.node, warnings, f.path, made=st)
            finally:
                os.close(fd)
        except (OSError, AmberError) as exc:
            self._report.fail(f, f"write failed: {failure(exc)}")
            return
        f.remaining = 0
        tally.blobs_written += 1
        tally.bytes_written += len(data)
        if self._verify:
            self._complete(f, tally)
        else:
            self._report.file_done(f, warnings, tally)

    def _write(self, f: RestoreFile, offset: int, data: Buffer, tally: Tally) -> None:
        if f.failed:
            return
        try:
            with f.lock:
                if not f.created:
                    os.close(self._create(f)[0])
            holes = offset >= f.fresh_from  # zeros there are already zeros
            if not (holes and is_zero(data)):
                fd = self._open(f, os.O_WRONLY)
                try:
                    pwrite_nonzero(fd, data, offset) if holes else pwrite(fd, memoryview(data), offset)
                finally:
                    os.close(fd)
        except (OSError, AmberError) as exc:
            self._report.fail(f, f"write failed: {failure(exc)}")
            return
        tally.blobs_written += 1
        tally.bytes_written += len(data)
        with f.lock:
            f.remaining -= 1
            done = f.remaining == 0
        if done:
            self._complete(f, tally)

    def _complete(self, f: RestoreFile, tally: Tally | None = None) -> None:
        warnings: list[str] = []
        try:
            fd = self._open(f, os.O_RDONLY)
            try:
                if self._verify and not self._verified(f, fd):
                    return
                apply_to_fd(fd, f.node, warnings, f.path)
            finally:
                os.close(fd)
        except (OSError, AmberError) as exc:
            self._report.fail(f, f"cannot reopen: {failure(exc)}")
            return
        self._report.file_done(f, warnings, tally)

    def _verified(self, f: RestoreFile, fd: int) -> bool:
        h = hashlib.sha256()
        buf = read_buffer()
        offset = 0
        while n := os.preadv(fd, [buf], offset):  # into one buffer per thread: no allocation per read
            h.update(buf[:n])
            offset += n
        if f.node.sha256 and h.digest() != f.node.sha256:
            self._report.fail(f, "SHA-256 of restored file does not match the snapshot", damaged=True)
            return False
        with self._report.lock:
            self._report.result.verified += 1
        return True

    # -- descriptors ----------------------------------------------------------
    def _create(
        self, f: RestoreFile, presize: bool = True, final_mode: bool = False
    ) -> tuple[int, os.stat_result]:
        """Create ``f`` (at its final size unless ``presize`` is False); nothing may be in the way
        (the walk cleared it). Returns the descriptor and its stat.

        With ``final_mode``, for a file written and finished through this one descriptor, it is
        made with its permission bits (no special bits) when restore made its directory: that
        directory stays 0700 until restore ends, so nobody else can reach the file meanwhile.
        """
        tree, parent = self._tree, f.parent
        mode = f.node.mode if final_mode and parent.made and 0 <= f.node.mode <= 0o777 else 0o600
        dfd = tree.pin(parent)
        try:
            fd = os.open(f.name, CREATE_FLAGS, mode, dir_fd=dfd)
        finally:
            tree.unpin(parent)
        try:
            if presize and f.node.size:
                os.ftruncate(fd, f.node.size)
            st = os.fstat(fd)
            f.ino, f.created = st.st_ino, True
        except OSError:
            os.close(fd)
            raise
        return fd, st

    def _open(self, f: RestoreFile, mode: int, expect_ino: bool = True) -> int:
        """Reopen ``f`` in its directory: still a regular file with one link, and the same inode."""
        tree, parent = self._tree, f.parent
        dfd = tree.pin(parent)
        try:
            fd = os.open(f.name, mode | OPEN_FLAGS, dir_fd=dfd)
        finally:
            tree.unpin(parent)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or (expect_ino and st.st_ino != f.ino):
            os.close(fd)
            raise AmberError("replaced during restore")
        return fd
