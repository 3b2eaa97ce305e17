"""The local backend's durability order, seen through a spy on os.fsync and os.replace.

A saved object survives a power cut only if its data is synced before the
rename and its directory is synced after it (the rename itself lives in the
directory). The same goes for a removal.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from amber.storage.base import FileType, Handle
from amber.storage.local import LocalBackend

NAME = "ab" * 32


class Spy:
    """Records ("fsync", path) and ("replace", src, dst) in call order; calls go through."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, ...]] = []
        real_fsync, real_replace = os.fsync, os.replace

        def fsync(fd: int) -> None:
            self.calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))  # resolved by the kernel
            real_fsync(fd)

        def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
            self.calls.append(("replace", os.path.realpath(src), os.path.realpath(dst)))
            real_replace(src, dst)

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)


@pytest.fixture
def local(tmp_path: Path) -> LocalBackend:
    backend = LocalBackend(tmp_path / "repo")
    backend.create()
    return backend


@pytest.mark.parametrize("kind", [FileType.PACK, FileType.INDEX, FileType.SNAPSHOT, FileType.LOCK])
def test_save_syncs_the_data_then_renames_then_syncs_the_directory(
    local: LocalBackend, monkeypatch: pytest.MonkeyPatch, kind: FileType
) -> None:
    spy = Spy(monkeypatch)
    handle = Handle(kind, NAME)
    local.save(handle, b"payload")
    final = os.path.realpath(local._path(handle))
    [rename] = [c for c in spy.calls if c[0] == "replace"]
    temp = rename[1]
    assert rename[2] == final
    assert spy.calls == [("fsync", temp), rename, ("fsync", os.path.dirname(final))]


def test_remove_syncs_the_directory(local: LocalBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    handle = Handle(FileType.SNAPSHOT, NAME)
    local.save(handle, b"payload")
    spy = Spy(monkeypatch)
    local.remove(handle)
    assert spy.calls == [("fsync", os.path.realpath(local.root / "snapshots"))]
