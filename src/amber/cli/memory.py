"""Keep the resident set small in a threaded process that juggles large buffers."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util

_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def tune_allocator() -> None:
    """Serve buffers of 1 MiB and more with mmap, so freeing them returns memory.

    glibc otherwise raises its mmap threshold after the first large free, and
    multi-MiB chunk and pack buffers then stay in per-thread arenas, nearly
    doubling peak RSS. No effect (and no error) on other C libraries.
    """
    name = ctypes.util.find_library("c")
    if not name:
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(name)
        libc.mallopt(_M_MMAP_THRESHOLD, 1 << 20)
        libc.mallopt(_M_ARENA_MAX, 2)
