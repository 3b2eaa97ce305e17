"""Local repositories and amber's own files are private to their owner (restic's modes).

Directories 0700, files 0600, whatever the umask; a repository created by an
older version (0755) is tightened by the first write. The per-repository cache
directory (the parent-trust record) is 0700 too.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from amber.repository import init_repository, open_repository
from amber.services.own_snapshots import OwnSnapshots, repo_cache_dir
from amber.storage import open_backend
from amber.storage.base import FileType, Handle
from tests.conftest import PASSWORD, AmberCli


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o002)
    try:
        yield
    finally:
        os.umask(old)


def _modes(root: Path) -> tuple[set[int], set[int]]:
    dirs, files = {stat.S_IMODE(root.stat().st_mode)}, set()
    for base, dnames, fnames in os.walk(root):
        dirs |= {stat.S_IMODE(os.stat(os.path.join(base, d)).st_mode) for d in dnames}
        files |= {stat.S_IMODE(os.stat(os.path.join(base, f)).st_mode) for f in fnames}
    return dirs, files


def test_init_and_backup_leave_only_private_modes(cli: AmberCli, tmp_path: Path, loose_umask: None) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.txt").write_bytes(b"data\n" * 100)
    cli.run("backup", str(src))
    dirs, files = _modes(cli.repo)
    assert dirs == {0o700}
    assert files == {0o600}


def test_an_older_repository_is_tightened_by_the_first_write(tmp_path: Path, loose_umask: None) -> None:
    path = tmp_path / "repo"
    init_repository(open_backend(str(path)), PASSWORD.encode()).close()
    path.chmod(0o755)
    (path / "snapshots").chmod(0o755)
    repo = open_repository(open_backend(str(path)), PASSWORD.encode())
    try:
        repo.backend.save(Handle(FileType.LOCK, "ab" * 32), b"lease")
    finally:
        repo.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o700  # nobody else can reach anything below


def test_cache_directory_is_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loose_umask: None
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    own = OwnSnapshots("cd" * 16)
    assert own.record("ef" * 32)
    assert stat.S_IMODE(os.stat(repo_cache_dir("cd" * 16)).st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "cache" / "amber").stat().st_mode) == 0o700
    assert stat.S_IMODE(os.stat(own.path).st_mode) == 0o600
    os.chmod(own.path, 0o644)
    assert own.record("0f" * 32)
    assert stat.S_IMODE(os.stat(own.path).st_mode) == 0o600
