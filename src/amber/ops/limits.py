"""Resource controls for the running process: CPU and I/O priority, threads, buffer memory.

``amber backup``/``amber run`` apply them with :func:`apply`; the systemd units
carry the same values as Nice=, IOSchedulingClass= etc. Scheduled runs (the
units and ``amber daemon``) run at low priority (:func:`scheduled`) unless
``[limits]`` sets ``nice`` or ``ionice_class``: a backup that nobody waits for
yields the CPU and the disk to whoever is working. ``amber backup`` typed by
hand keeps full speed. The I/O class is set
with the ioprio_set system call (via ctypes), falling back to util-linux
``ionice`` on architectures whose syscall number is not known here.
"""

from __future__ import annotations

import ctypes
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass, replace

from amber.errors import UsageError
from amber.ops.config.check import parse_size
from amber.ops.config.model import LimitsConfig

IOPRIO_CLASSES = {"realtime": 1, "best-effort": 2, "idle": 3}
_CLASS_NAMES = {v: k for k, v in IOPRIO_CLASSES.items()} | {0: "none"}
_IOPRIO_WHO_PROCESS = 1
_IOPRIO_CLASS_SHIFT = 13
# (ioprio_set, ioprio_get) per machine; see the kernel's syscall tables
_SYSCALLS = {
    "x86_64": (251, 252), "amd64": (251, 252), "i386": (289, 290), "i686": (289, 290),
    "aarch64": (30, 31), "arm64": (30, 31), "riscv64": (30, 31), "armv7l": (314, 315),
    "ppc64le": (273, 274), "ppc64": (273, 274), "s390x": (282, 283),
}  # fmt: skip
SCHEDULED_NICE = 19
SCHEDULED_IONICE_CLASS = "idle"
BUFFER_BYTES_PER_WORKER = 48 << 20  # chunker window, chunk and pack buffers of one archiver thread
BASE_BYTES = 96 << 20  # interpreter, index, tree cache


@dataclass(frozen=True)
class Limits:
    nice: int | None = None
    ionice_class: str | None = None
    ionice_level: int | None = None
    threads: int | None = None
    memory_cap: int | None = None  # bytes of buffers
    limit_upload: int = 0  # KiB/s
    limit_download: int = 0

    @classmethod
    def from_config(cls, cfg: LimitsConfig) -> Limits:
        return cls(cfg.nice, cfg.ionice_class, cfg.ionice_level, cfg.threads, cfg.memory_max_bytes,
                   cfg.limit_upload, cfg.limit_download)  # fmt: skip

    def override(self, **values: object) -> Limits:
        """Command-line values win over the config file; None means 'not given'."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})  # type: ignore[arg-type]

    @property
    def workers(self) -> int | None:
        """Archiver threads: ``threads``, lowered until the buffers fit ``memory_cap``."""
        workers = self.threads
        if self.memory_cap is not None:
            fit = max(1, (self.memory_cap - BASE_BYTES) // BUFFER_BYTES_PER_WORKER)
            workers = min(workers or max(2, os.cpu_count() or 2), fit)
        return workers


def scheduled(cfg: LimitsConfig) -> LimitsConfig:
    """``[limits]`` for a scheduled run: nice 19 and the idle I/O class where the config says nothing."""
    return replace(
        cfg,
        nice=SCHEDULED_NICE if cfg.nice is None else cfg.nice,
        ionice_class=SCHEDULED_IONICE_CLASS if cfg.ionice_class is None else cfg.ionice_class,
    )


def _libc_syscall() -> tuple[ctypes.CDLL, tuple[int, int]] | None:
    numbers = _SYSCALLS.get(platform.machine().lower())
    if numbers is None or not hasattr(os, "getpid"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True), numbers
    except OSError:
        return None


def set_io_priority(cls_name: str, level: int | None, pid: int = 0) -> None:
    klass = IOPRIO_CLASSES[cls_name]
    data = 0 if cls_name == "idle" else (4 if level is None else level)
    found = _libc_syscall()
    if found is not None:
        libc, (set_nr, _) = found
        value = (klass << _IOPRIO_CLASS_SHIFT) | data
        if libc.syscall(set_nr, _IOPRIO_WHO_PROCESS, pid, value) == 0:
            return
        err = ctypes.get_errno()
        raise UsageError(f"cannot set I/O priority {cls_name}: {os.strerror(err)}")
    ionice = shutil.which("ionice")
    if ionice is None:
        raise UsageError("cannot set I/O priority on this machine (no ionice)")
    args = [ionice, "-c", str(klass), "-p", str(pid or os.getpid())]
    if cls_name != "idle":
        args[3:3] = ["-n", str(data)]
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise UsageError(f"cannot set I/O priority {cls_name}: {proc.stderr.strip()}")


def get_io_priority(pid: int = 0) -> tuple[str, int] | None:
    """(class name, level) of ``pid`` (0 = this process), or None when unknown."""
    found = _libc_syscall()
    if found is None:
        return None
    libc, (_, get_nr) = found
    value = libc.syscall(get_nr, _IOPRIO_WHO_PROCESS, pid)
    if value < 0:
        return None
    return _CLASS_NAMES.get(value >> _IOPRIO_CLASS_SHIFT, "unknown"), value & 0x1FFF


def set_nice(nice: int) -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except PermissionError as exc:
        raise UsageError(f"cannot set nice {nice}: {exc.strerror} (lower values need privileges)") from exc


def apply(limits: Limits) -> list[str]:
    """Apply the process-wide limits; returns one line per change made."""
    done = []
    if limits.nice is not None:
        set_nice(limits.nice)
        done.append(f"nice {limits.nice}")
    if limits.ionice_class is not None:
        set_io_priority(limits.ionice_class, limits.ionice_level)
        level = "" if limits.ionice_class == "idle" else f" level {limits.ionice_level or 4}"
        done.append(f"ionice {limits.ionice_class}{level}")
    if limits.workers is not None:
        done.append(f"{limits.workers} worker thread(s)")
    return done


def with_options(
    base: Limits, nice: int | None = None, ionice_class: str | None = None, ionice_level: int | None = None,
    threads: int | None = None, memory_cap: str | None = None,
) -> Limits:  # fmt: skip
    """``base`` (from the config) overridden by command-line options."""
    cap = None
    if memory_cap is not None:
        cap = parse_size(memory_cap)
        if cap is None:
            raise UsageError(f"--memory-cap: expected a size like 512M or 1G, got {memory_cap!r}")
    return base.override(nice=nice, ionice_class=ionice_class, ionice_level=ionice_level, threads=threads,
                         memory_cap=cap)  # fmt: skip
