"""What a restore counts and reports: the result, the files in flight, and their progress.

The walk, the writer's threads and a forked worker all count into a
:class:`Reporter`; a worker's own result is added to the restorer's with
:meth:`RestoreResult.absorb`.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field, fields

from amber.engine.progress import Progress, is_silent
from amber.engine.restore_fs import Dir
from amber.errors import AmberError
from amber.repository import Node


@dataclass
class RestoreResult:
    files: int = 0
    dirs: int = 0
    bytes: int = 0
    verified: int = 0
    errors: list[str] = field(default_factory=list)
    damaged: int = 0  # files whose stored data was missing or corrupt (a subset of errors)
    warnings: list[str] = field(default_factory=list)
    blobs_written: int = 0
    bytes_written: int = 0  # plaintext of the blobs written (holes included)
    blobs_skipped: int = 0  # already intact in an existing file (resume)

    def absorb(self, other: RestoreResult) -> None:
        """Add what ``other`` counted (a worker process's result)."""
        for name in (f.name for f in fields(self)):
            mine, theirs = getattr(self, name), getattr(other, name)
            if isinstance(mine, list):
                mine.extend(theirs)
            else:
                setattr(self, name, mine + theirs)


_LOCKS = tuple(threading.Lock() for _ in range(64))


@dataclass(slots=True, eq=False)
class RestoreFile:
    parent: Dir
    name: bytes
    path: bytes  # target + relative path, for messages
    node: Node
    existing: bool = False  # a regular file is there: check it blob by blob
    remaining: int = 0
    failed: bool = False
    created: bool = False
    ino: int = 0
    fresh_from: int = 0  # from here on the file is holes: zero blocks need no write

    @property
    def lock(self) -> threading.Lock:
        """Guards this file's flags and count; one of a few locks shared by all files (a lock
        each cost the walk an allocation per file). Held only briefly, never two at once."""
        return _LOCKS[id(self) >> 4 & 63]


@dataclass(slots=True)
class Tally:
    """What one worker task restored, added to the result under one lock acquisition at its end."""

    files: int = 0
    bytes: int = 0
    blobs_written: int = 0
    bytes_written: int = 0
    warnings: list[str] = field(default_factory=list)
    quiet: bool = True  # nobody hears per-file progress now: file_done calls are left out


class Reporter:
    """The result and progress shared by the walk and the workers."""

    def __init__(self, result: RestoreResult, progress: Progress) -> None:
        self.result = result
        self.progress = progress
        self.lock = threading.Lock()

    def tally(self) -> Tally:
        return Tally(quiet=is_silent(self.progress))

    def add(self, t: Tally) -> None:
        with self.lock:
            r = self.result
            r.files += t.files
            r.bytes += t.bytes
            r.blobs_written += t.blobs_written
            r.bytes_written += t.bytes_written
            r.warnings.extend(t.warnings)
        if t.bytes_written:
            self.progress.bytes_done(t.bytes_written)

    def error(self, path: bytes, why: str) -> None:
        with self.lock:
            self.result.errors.append(f"{os.fsdecode(path)}: {why}")
        self.progress.error(path, why)

    def fail(self, f: RestoreFile, why: str, damaged: bool = False) -> None:
        with f.lock:
            if f.failed:
                return
            f.failed = True
        if damaged:
            with self.lock:
                self.result.damaged += 1
        self.error(f.path, why)

    def file_done(self, f: RestoreFile, warnings: list[str], tally: Tally | None = None) -> None:
        """Count ``f`` as restored: in ``tally`` when given (added later), else now."""
        size = f.node.size
        if tally is None:
            with self.lock:
                self.result.warnings.extend(warnings)
                self.result.files += 1
                self.result.bytes += size
        else:
            tally.files += 1
            tally.bytes += size
            if warnings:
                tally.warnings.extend(warnings)
            if tally.quiet:
                return
        self.progress.file_done(f.path, size, "restored")


def failure(exc: OSError | AmberError) -> str:
    """Why a file failed, in a few words."""
    return exc.message if isinstance(exc, AmberError) else str(exc.strerror)
