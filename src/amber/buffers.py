"""Large reusable buffers whose memory is only committed where it is written.

``bytearray(n)`` zero-fills, so every page of a 16-25 MiB pack or read buffer
would count in the resident set even when a run writes a few KiB into it. An
anonymous mapping starts as shared zero pages and grows page by page on first
write, and the process keeps it for reuse (no fault the second time).
"""

from __future__ import annotations

import mmap


def lazy_buffer(size: int) -> mmap.mmap:
    """A writable, zero-initialised buffer of ``size`` bytes, committed lazily."""
    return mmap.mmap(-1, max(size, 1), flags=mmap.MAP_PRIVATE)
