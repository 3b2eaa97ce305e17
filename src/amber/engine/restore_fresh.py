"""New one-blob files, written straight from their packs: the common case of a restore.

Most files of a restore are new and hold one blob. For them the general writer's
bookkeeping (blobs planned per file, their offsets, a lock per file, a count of
blobs still due) costs more than the system calls do (design §15). Here each
pack's blobs are read in one request as usual and every file is made whole on
one descriptor: created (``O_CREAT | O_EXCL | O_NOFOLLOW`` beneath its
directory's descriptor, the one the walk checked), written with zero blocks
left as holes, given its metadata, closed. The directory's descriptor stays
pinned while consecutive files share it.

Everything else (resumed files, files of several blobs, ``--verify``) goes to
the general writer, and so does nothing here: the checks are the same.
"""

from __future__ import annotations

import os

from amber.cancel import CancelToken
from amber.engine.metadata import apply_to_fd
from amber.engine.restore_fs import Dir, TargetTree
from amber.engine.restore_io import CREATE_FLAGS, BlobSource, Buffer, pwrite_nonzero
from amber.engine.restore_report import Reporter, RestoreFile, Tally, failure
from amber.errors import AmberError, IntegrityError
from amber.repository import Location

_DECODE_AHEAD = 4 << 20  # small blobs decoded before they are written: the decoders stay in cache
_GROUP = 64  # files created, then written, then finished, step by step
_Open = tuple[RestoreFile, int, os.stat_result, Buffer]  # a file just created: its descriptor and stat
_Wanted = dict[bytes, tuple[Location, list[RestoreFile]]]  # blob id: where it is, the files it fills


def is_fresh(f: RestoreFile) -> bool:
    """A new file of exactly one blob."""
    return not f.existing and len(f.node.content) == 1


class FreshWriter:
    def __init__(self, tree: TargetTree, blobs: BlobSource, report: Reporter, cancel: CancelToken) -> None:
        self._tree = tree
        self._blobs = blobs
        self._report = report
        self._cancel = cancel

    def write(self, files: list[RestoreFile]) -> None:
        """Write ``files`` (each :func:`is_fresh`) pack by pack; failures are reported per file."""
        packs: dict[str, _Wanted] = {}
        locate = self._blobs.locate
        for f in files:
            blob_id = f.node.content[0]
            try:
                loc = locate(blob_id)
            except AmberError as exc:
                self._report.fail(f, str(exc), damaged=True)
                continue
            wanted = packs.get(loc.pack)
            if wanted is None:
                wanted = packs[loc.pack] = {}
            entry = wanted.get(blob_id)
            if entry is None:
                wanted[blob_id] = (loc, [f])
            else:  # one blob, several files (deduplicated content)
                entry[1].append(f)
        for pack, wanted in packs.items():
            self._pack(pack, wanted)

    def _pack(self, pack: str, wanted: _Wanted) -> None:
        """Decode a few MiB of small blobs, then write their files, and so on: decoding and
        writing in turns per blob keeps neither's code and tables in the CPU's caches (a
        fifth more CPU a file). A large blob is a view of a reused buffer: written at once."""
        self._cancel.check()
        tally = self._report.tally()
        pinned = _Pinned(self._tree)
        ready: list[tuple[bytes, Buffer | IntegrityError]] = []
        held = 0
        try:
            for blob_id, blob in self._blobs.stream_from_pack(pack, [(b, e[0]) for b, e in wanted.items()]):
                ready.append((blob_id, blob))
                held += len(blob) if not isinstance(blob, IntegrityError) else 0
                if held >= _DECODE_AHEAD or isinstance(blob, memoryview):
                    self._deliver(ready, wanted, pinned, tally)
                    held = 0
        except AmberError as exc:  # the pack could not be read: what it still owed is damaged
            self._deliver(ready, wanted, pinned, tally)
            for _, files in wanted.values():
                for f in files:
                    self._report.fail(f, f"damaged data: {exc}", damaged=True)
        else:
            self._deliver(ready, wanted, pinned, tally)
        finally:
            pinned.release()
            self._report.add(tally)

    def _deliver(
        self, ready: list[tuple[bytes, Buffer | IntegrityError]], wanted: _Wanted, pinned: _Pinned,
        tally: Tally,
    ) -> None:  # fmt: skip
        """Write the files of the ``ready`` blobs (emptied), in groups of up to ``_GROUP``."""
        group: list[_Open] = []
        for blob_id, blob in ready:
            for f in wanted.pop(blob_id)[1]:
                if isinstance(blob, IntegrityError):
                    self._report.fail(f, f"damaged data: {blob}", damaged=True)
                    continue
                opened = self._create(f, blob, pinned)
                if opened is not None:
                    group.append(opened)
                    if len(group) == _GROUP:
                        self._finish(group, tally)
        self._finish(group, tally)
        ready.clear()

    def _create(self, f: RestoreFile, data: Buffer, pinned: _Pinned) -> _Open | None:
        """Create ``f``, empty, in its directory.

        It is made with its permission bits (no special bits) when restore made its
        directory: that directory stays 0700 until restore ends.
        """
        node, parent = f.node, f.parent
        mode = node.mode if parent.made and 0 <= node.mode <= 0o777 else 0o600
        try:
            fd = os.open(f.name, CREATE_FLAGS, mode, dir_fd=pinned.fd(parent))
        except (OSError, AmberError) as exc:
            self._report.fail(f, f"write failed: {failure(exc)}")
            return None
        try:
            st = os.fstat(fd)
        except OSError as exc:
            os.close(fd)
            self._report.fail(f, f"write failed: {failure(exc)}")
            return None
        f.ino, f.created = st.st_ino, True
        return f, fd, st, data

    def _finish(self, group: list[_Open], tally: Tally) -> None:
        """Write the files of ``group`` (emptied), then set their metadata, then close them:
        each step for the whole group, so the kernel's code for it stays in the CPU's caches
        too (8 % less CPU a file than every step per file)."""
        failed: set[RestoreFile] = set()
        for f, fd, _, data in group:
            try:
                if pwrite_nonzero(fd, data, 0) < f.node.size:  # it ends in a hole
                    os.ftruncate(fd, f.node.size)
            except OSError as exc:
                self._report.fail(f, f"write failed: {failure(exc)}")
                failed.add(f)
        warned: list[list[str]] = []
        for f, fd, st, _ in group:
            warnings: list[str] = []
            warned.append(warnings)
            if f not in failed:
                try:
                    apply_to_fd(fd, f.node, warnings, f.path, made=st)
                except (OSError, AmberError) as exc:
                    self._report.fail(f, f"write failed: {failure(exc)}")
                    failed.add(f)
        for f, fd, _, _ in group:
            try:
                os.close(fd)
            except OSError as exc:
                if f not in failed:
                    self._report.fail(f, f"write failed: {failure(exc)}")
                    failed.add(f)
        for (f, _, _, data), warnings in zip(group, warned, strict=True):
            if f not in failed:
                tally.blobs_written += 1
                tally.bytes_written += len(data)
                self._report.file_done(f, warnings, tally)
        group.clear()


class _Pinned:
    """The descriptor of the directory the last file went into, kept until another is needed."""

    __slots__ = ("_dir", "_fd", "_tree")

    def __init__(self, tree: TargetTree) -> None:
        self._tree = tree
        self._dir: Dir | None = None
        self._fd = -1

    def fd(self, d: Dir) -> int:
        if d is not self._dir:
            self.release()
            self._fd = self._tree.pin(d)
            self._dir = d
        return self._fd

    def release(self) -> None:
        if self._dir is not None:
            d, self._dir = self._dir, None
            self._tree.unpin(d)
