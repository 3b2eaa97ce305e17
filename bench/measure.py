"""Process measurement helpers: wall/CPU time and peak RSS via ``os.wait4``."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Measurement:
    """Result of one measured child process."""

    wall_s: float
    user_s: float
    sys_s: float
    max_rss_kib: int
    returncode: int
    error: str = ""
    tree_rss_kib: int = 0

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run_measured(cmd: list[str], env: dict[str, str], log_path: Path, cwd: Path | None = None) -> Measurement:
    """Run ``cmd``, send its output to ``log_path`` and measure it.

    Peak RSS comes from ``/usr/bin/time`` launching the tool: Linux carries a
    process's RSS high-water mark across fork and exec, so a tool forked straight
    from this (large) Python process would report at least our own RSS. ``time``
    is small, and reports its child's ``ru_maxrss`` (KiB). CPU times come from
    ``wait4`` and include the child.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    rss_file = log_path.with_suffix(".maxrss")
    with open(log_path, "ab") as log:
        log.write(f"$ {' '.join(cmd)}\n".encode())
        log.flush()
        start = time.perf_counter()
        wrapped = ["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *cmd]
        proc = subprocess.Popen(wrapped, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        sampler = TreeRssSampler(proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        sampler.stop.set()
        sampler.join()
    proc.returncode = rc = os.waitstatus_to_exitcode(status)
    error = "" if rc == 0 else tail(log_path, 15)
    try:
        maxrss = int(rss_file.read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        maxrss = usage.ru_maxrss
    return Measurement(wall, usage.ru_utime, usage.ru_stime, maxrss, rc, error, sampler.peak_kib)


class TreeRssSampler(threading.Thread):
    """Samples the summed RSS of a process and its descendants every ``interval`` s.

    ``wait4`` only reports the largest single process; this catches tools that
    spread work over several processes.
    """

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak_kib = 0
        self.stop = threading.Event()
        self.page_kib = os.sysconf("SC_PAGE_SIZE") // 1024

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak_kib = max(self.peak_kib, self.sample())
            self.stop.wait(self.interval)

    def sample(self) -> int:
        children: dict[int, list[int]] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
        total, todo = 0, [self.pid]
        while todo:
            pid = todo.pop()
            todo.extend(children.get(pid, ()))
            try:
                with open(f"/proc/{pid}/statm") as fh:
                    total += int(fh.read().split()[1]) * self.page_kib
            except (OSError, IndexError, ValueError):
                continue
        return total


def tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def drop_caches() -> bool:
    """Flush dirty pages and drop the page cache. Returns False if not permitted."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3\n")
    except OSError:
        return False
    return True


def du_bytes(path: Path) -> int:
    """Apparent size of all regular files below ``path`` (like ``du -sb``)."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def tree_digest(root: Path) -> dict[str, tuple[int, str]]:
    """Map relative path -> (size, blake2b hex) for every regular file."""
    out: dict[str, tuple[int, str]] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            full = os.path.join(dirpath, name)
            h = hashlib.blake2b(digest_size=16)
            size = 0
            with open(full, "rb") as fh:
                while block := fh.read(1 << 20):
                    h.update(block)
                    size += len(block)
            out[os.path.relpath(full, root)] = (size, h.hexdigest())
    return out


def compare_trees(expected: dict[str, tuple[int, str]], actual: dict[str, tuple[int, str]]) -> str:
    """Empty string if equal, else a short description of the differences."""
    missing = sorted(expected.keys() - actual.keys())
    extra = sorted(actual.keys() - expected.keys())
    differ = sorted(k for k in expected.keys() & actual.keys() if expected[k] != actual[k])
    if not (missing or extra or differ):
        return ""
    parts = []
    for label, items in (("missing", missing), ("extra", extra), ("differ", differ)):
        if items:
            parts.append(f"{len(items)} {label} (e.g. {items[0]})")
    return "; ".join(parts)
