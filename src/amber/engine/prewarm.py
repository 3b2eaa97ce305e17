"""Metadata prefetch in a helper process, so a cold walk does not wait on the disk.

On a cold cache an unchanged re-backup is bound by metadata reads: every
directory block and inode is read from disk by the walker's lstat calls, one at
a time. Threads in the backup process could issue those reads in parallel, but
each lstat re-takes the GIL, and the hand-offs cost more than the walker's own
work. So a separate process walks the same paths in the walker's order
(depth first, names sorted), listing and lstat-ing everything. The kernel
caches what it reads, and the walker, a little behind, finds its metadata in
memory; the kernel's share of a cold walk (most of it) runs on another core.
The helper keeps nothing; the results the backup uses are always the
walker's own, so it cannot change what is backed up.

The helper stops when it has walked everything, or as soon as its stdin
closes: when the archiver calls :meth:`Prewarm.stop`, or when the backup
process dies. Its code is prewarm_walk.py, run in a bare interpreter that
loads no amber package, since its memory counts with the backup's.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

from amber.engine.patterns import PathMatcher
from amber.engine.walkrule import Mounts

THREADS = 2  # more threads cost more CPU (GIL and kernel contention) than they save
# The helper imports prewarm_walk from its directory, not the amber package (see there).
_BOOT = (
    f"import sys; sys.path.append({os.path.dirname(os.path.abspath(__file__))!r}); "
    "import prewarm_walk; prewarm_walk.main(sys.argv[1:])"
)


class Prewarm:
    """A running helper process; :meth:`stop` ends it."""

    def __init__(self, proc: subprocess.Popen[bytes] | None) -> None:
        self._proc = proc

    @property
    def running(self) -> bool:
        return self._proc is not None

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()  # the helper exits at once on end of input
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start(
    paths: list[bytes], excludes: PathMatcher, one_file_system: bool, threads: int = THREADS,
    mounts: Mounts = (),
) -> Prewarm:  # fmt: skip
    """Start walking recorded ``paths`` in a helper process, reading them where ``mounts`` maps them.

    Failing to start it only loses the prefetch.
    """
    if not sys.executable:  # an embedded interpreter: nothing to start
        return Prewarm(None)
    try:
        proc = subprocess.Popen(
            command(paths, excludes, one_file_system, threads, mounts),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
        )
    except OSError:
        return Prewarm(None)
    return Prewarm(proc)


def command(
    paths: list[bytes], excludes: PathMatcher, one_file_system: bool, threads: int, mounts: Mounts = ()
) -> list[str]:
    """The helper's command line: a bare interpreter (no site, no environment) running prewarm_walk."""
    args = [sys.executable, "-I", "-S", "-c", _BOOT, "1" if one_file_system else "0", str(threads)]
    args += [str(len(excludes.patterns)), *excludes.patterns, str(len(mounts))]
    args += [os.fsdecode(root) for pair in mounts for root in pair]
    return [*args, *(os.fsdecode(p) for p in paths)]
