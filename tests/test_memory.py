"""The allocator settings: set in-process, without a child process (restore forks one per worker)."""

from __future__ import annotations

import ctypes
import platform
import subprocess

import pytest

from amber import memory


def test_settings_start_no_child_process(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a child process was started: {args}")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    memory.tune_allocator()
    memory.favour_throughput()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_the_process_symbols_hold_mallopt(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []

    class Libc:
        def mallopt(self, param: int, value: int) -> int:
            calls.append((param, value))
            return 1

    assert ctypes.CDLL(None).mallopt(memory._M_MMAP_THRESHOLD, 1 << 20) == 1  # accepted by the real one
    monkeypatch.setattr(ctypes, "CDLL", lambda name: Libc())
    memory.favour_throughput()
    assert calls == [(memory._M_MMAP_THRESHOLD, 64 << 20), (memory._M_TRIM_THRESHOLD, 128 << 20)]
