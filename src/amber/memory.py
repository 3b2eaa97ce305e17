"""The C allocator's settings for a whole process: lean (the default), or fast for short-lived
or streaming work. Outside the layers: the CLI picks a command's, a restore's forked
workers pick their own."""

from __future__ import annotations

import contextlib
import ctypes

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def _mallopt(*settings: tuple[int, int]) -> None:
    """Set glibc malloc parameters; no effect (and no error) on other C libraries.

    The process's own symbols hold the C library's: ``ctypes.util.find_library`` would
    run ``ldconfig -p`` in a child process, once per restore worker too."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None)
        for param, value in settings:
            libc.mallopt(param, value)


def tune_allocator() -> None:
    """Serve buffers of 1 MiB and more with mmap, so freeing them returns memory.

    glibc otherwise raises its mmap threshold after the first large free, and
    multi-MiB chunk and pack buffers then stay in per-thread arenas, nearly
    doubling peak RSS.
    """
    _mallopt((_M_MMAP_THRESHOLD, 1 << 20), (_M_ARENA_MAX, 2))


def favour_throughput() -> None:
    """Keep buffers up to 64 MiB in the heap for reuse, for commands that stream whole
    packs (copy) and for a restore's forked workers: a fresh mapping per 16 MiB pack read
    costs more in page faults than the copy itself. Peak RSS grows by a few buffers;
    backup keeps the lean setting.
    """
    _mallopt((_M_MMAP_THRESHOLD, 64 << 20), (_M_TRIM_THRESHOLD, 128 << 20))
