"""Size limits on everything read from storage (design §3, "Size limits").

Anyone who can write to the storage can plant a file of any size, and a key
holder can seal any length into an index or a pack. Every read is bounded by one
of these limits *before* it is made or its length is allocated; an object over
its limit is an :class:`~amber.errors.ObjectTooLarge` naming it. Each limit
leaves a wide margin over the largest object amber writes, noted beside it.
"""

from __future__ import annotations

from amber.storage.base import FileType

KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30

# Whole objects read in one load. Largest written (see design §3):
OBJECT_LIMITS: dict[FileType, int] = {
    FileType.CONFIG: 64 * KIB,  # ~200 bytes
    FileType.KEY: 64 * KIB,  # ~600 bytes of JSON
    FileType.LOCK: 64 * KIB,  # ~100 bytes
    # paths, tags and the list of skipped files: 64 MiB is ~500k skipped paths;
    # save_snapshot refuses to write a larger one.
    FileType.SNAPSHOT: 64 * MIB,
    # <= 16,384 rows + one pack's rows (backup), <= 200,000 + one pack's (prune,
    # repair index); a pack of tiny blobs has < 600k rows of ~45 bytes: < 40 MB.
    FileType.INDEX: 128 * MIB,
    FileType.AUDIT: 64 * MIB,  # the records since the last replication, ~1 KiB each
    FileType.RUNS: 256 * KIB,  # one job's last runs on one host: run_records refuses to write > 64 KiB
    # one WAL file: PostgreSQL's largest wal_segment_size is 1 GiB; header and seal are tiny
    FileType.WAL: 1 * GIB + 1 * MIB,
}

# Blobs (design §6). A data blob is one chunk: its plaintext is at most the
# chunker's maximum (config ``chunk_max``, 8 MiB); DATA_BLOB_SLACK is margin.
DATA_BLOB_SLACK = 1 * MIB
MAX_CHUNK_MAX = 64 * MIB  # a config asking for larger chunks is refused
# A tree blob lists one directory. 256 MiB is ~1M entries, or one file of ~9 TiB
# (its content list: 34 bytes per ~1.25 MiB chunk). The writer refuses larger trees.
MAX_TREE_BYTES = 256 * MIB

# Packs (design §7): 16 MiB of blobs + one blob that did not fit + the header.
# A header row is ~45 bytes for a sealed blob of at least 29 bytes.
MAX_PACK_HEADER = 64 * MIB
MAX_PACK_BYTES = 16 * MIB + MAX_TREE_BYTES + MAX_PACK_HEADER + 64 * MIB

# argon2id cost accepted from a key file, and allowed for new keys (design §4).
# The default is t=4, m=32 MiB, p=2 (~0.1 s); an absurd cost would hang or exhaust
# every open. The memory is also held to half of this machine's RAM.
MAX_KDF_TIME_COST = 16
MAX_KDF_MEMORY_KIB = 1 << 20  # 1 GiB
MAX_KDF_PARALLELISM = 16
MAX_KDF_WORK_KIB = 4 << 20  # time_cost x memory: at most 4 GiB of passes, a few seconds


def data_blob_limit(chunk_max: int) -> int:
    """The largest plaintext of a data blob in a repository whose chunker cuts at ``chunk_max``."""
    return chunk_max + DATA_BLOB_SLACK


def chunker_problem(chunk_min: int, chunk_avg: int, chunk_max: int) -> str | None:
    """Why a config's chunk sizes are refused (they bound every data blob read), or None."""
    if 0 < chunk_min <= chunk_avg <= chunk_max <= MAX_CHUNK_MAX:
        return None
    return f"min {chunk_min}, avg {chunk_avg}, max {chunk_max}; the maximum may be at most {MAX_CHUNK_MAX}"
