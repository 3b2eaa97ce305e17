"""The one rule for what a backup walk records and enters, and where it reads it.

Both the archiver (archiver.py, scanner.py) and the prewarm helper
(prewarm_walk.py) decide with this module. The helper runs in a bare
interpreter and imports this file by location, so it uses only ``os`` and
``stat`` and never the amber package.

Paths here are *recorded* paths: the ones the snapshot stores and excludes
match. A source may read them elsewhere (a filesystem snapshot mounted under
another directory); ``read_path`` maps a recorded path to where it is read.
"""

from __future__ import annotations

import os
import stat

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: collections.abc costs the helper ~0.5 MiB
    from collections.abc import Callable

    Excluded = Callable[[bytes, bytes], bool] | None

# (recorded root, read root) pairs, longest recorded root first; see read_path.
Mounts = tuple[tuple[bytes, bytes], ...]


class Rule:
    """Which entries below a backup path are in the backup, and which directories are walked.

    * An entry whose recorded path or name matches an exclude is not in the
      backup: no node, nothing below it.
    * Any other entry is recorded (sockets aside: they have no node type).
    * A recorded directory is entered (listed and walked) unless
      ``one_file_system`` is set and it lies on another filesystem than the
      directory it was found in: then it is recorded empty.

    Ancestors of a backup path are outside the rule: they are recorded so the
    path can be found, whatever the excludes say.
    """

    __slots__ = ("excluded", "one_file_system")

    def __init__(self, excluded: Excluded, one_file_system: bool) -> None:
        self.excluded = excluded
        self.one_file_system = one_file_system

    def skips(self, path: bytes, name: bytes) -> bool:
        """The entry at recorded ``path`` (last component ``name``) is not in the backup."""
        excluded = self.excluded
        return excluded is not None and excluded(path, name)

    def stays_out(self, st: os.stat_result, dev: int | None) -> bool:
        """A recorded directory that is not entered: another filesystem than ``dev``."""
        return self.one_file_system and st.st_dev != dev

    def enters(self, path: bytes, name: bytes, st: os.stat_result, dev: int | None) -> bool:
        """``st`` (lstat of ``path``) is a directory the walk lists, found in a directory on ``dev``."""
        return stat.S_ISDIR(st.st_mode) and not self.stays_out(st, dev) and not self.skips(path, name)


def read_path(mounts: Mounts, path: bytes) -> bytes:
    """Where recorded ``path`` is read: below the longest mounted recorded root, else in place."""
    for recorded, read in mounts:
        if path == recorded:
            return read
        n = len(recorded)
        if path.startswith(recorded) and (recorded == b"/" or path[n : n + 1] == b"/"):
            rest = path[n:]
            return read.rstrip(b"/") + (rest if rest.startswith(b"/") else b"/" + rest)
    return path


def mounts_of(pairs: list[tuple[bytes, bytes]]) -> Mounts:
    """Normalized (recorded root, read root) pairs, longest recorded root first."""
    norm = [(os.path.normpath(rec), os.path.normpath(read)) for rec, read in pairs]
    return tuple(sorted(norm, key=lambda m: len(m[0]), reverse=True))
