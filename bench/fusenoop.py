"""The floor under `amber mount`: a FUSE file system in Python that does nothing.

    python bench/fusenoop.py [--files 1000] [--size 2000] [--rounds 5]

Serves ``--files`` files of ``--size`` bytes from memory through mfusepy, the same
options `amber mount` uses, and times reading them all (open, read, close: what
bench/mountbench.py does through the real mount). Whatever this costs per file is
the kernel <-> Python round trips, not amber; the difference to mountbench's figure
is amber's own work (lookups, index, pack reads, decryption). Also times the same
reads through amber's FUSE-free view (catalog/mountfs.py) without the kernel, when
``--repo`` names a repository mountbench made. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import errno
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any


class NoopFS:
    """Files ``f00000`` ... in the root, contents served from one bytes object."""

    use_ns = True

    def __init__(self, files: int, size: int) -> None:
        self.names = {f"f{i:05d}" for i in range(files)}
        self.data = os.urandom(size)
        now = time.time_ns()
        times = {"st_mtime": now, "st_atime": now, "st_ctime": now}
        self.file_attr = {"st_mode": 0o100644, "st_nlink": 1, "st_size": size, **times,
                          "st_uid": os.getuid(), "st_gid": os.getgid()}  # fmt: skip
        self.dir_attr = {**self.file_attr, "st_mode": 0o40755, "st_nlink": 2, "st_size": 0}
        self.ready = threading.Event()

    def init(self, path: str) -> None:
        self.ready.set()

    def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
        if path == "/":
            return self.dir_attr
        if path[1:] in self.names:
            return self.file_attr
        raise OSError(errno.ENOENT, "")

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *sorted(self.names)]

    def open(self, path: str, flags: int) -> int:
        return 0

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return self.data[offset : offset + size]

    def release(self, path: str, fh: int) -> int:
        return 0


def read_all(directory: Path, names: list[str]) -> int:
    total = 0
    for name in names:
        with open(directory / name, "rb") as f:
            total += len(f.read())
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--size", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    import mfusepy

    mountpoint = Path(tempfile.mkdtemp(prefix="amber-fusenoop-"))
    fs = NoopFS(args.files, args.size)
    options: dict[str, Any] = {"foreground": True, "ro": True, "fsname": "noop", "default_permissions": True,
                               "entry_timeout": 60, "attr_timeout": 60}  # fmt: skip
    thread = threading.Thread(target=mfusepy.FUSE, args=(fs, str(mountpoint)), kwargs=options, daemon=True)
    thread.start()
    if not fs.ready.wait(30):
        raise SystemExit("mount did not come up")
    try:
        names = sorted(os.listdir(mountpoint))
        for name in names:  # as mountbench's `ls -l` before its reads
            os.stat(mountpoint / name)
        cold = time.perf_counter()
        read_all(mountpoint, names)  # without keep_cache, every open reads through the file system again
        first = time.perf_counter() - cold
        runs = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            read_all(mountpoint, names)
            runs.append(time.perf_counter() - start)
        print(
            f"no-op FUSE in Python: read {args.files} files of {args.size} B: first {first:.3f} s, "
            f"then median {statistics.median(runs):.3f} s of {args.rounds} ({[round(r, 3) for r in runs]})"
        )
    finally:
        subprocess.run(["fusermount3", "-u", str(mountpoint)], check=False)
        thread.join(10)
        os.rmdir(mountpoint)
    sys.exit(0)


if __name__ == "__main__":
    main()
