"""Files are made with their mode where nobody else can reach them; the result is the same under any umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from amber.repository import Repository
from amber.services.backup import BackupRequest, backup_paths
from amber.services.restore import RestoreRequest, restore

MODES = [0o000, 0o200, 0o444, 0o640, 0o666, 0o777, 0o4755, 0o2750, 0o1644]


@pytest.fixture
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def modes_of(root: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.lstat().st_mode) for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o000], indirect=True)
@pytest.mark.parametrize("verify", [False, True])
def test_modes_survive_any_umask_in_new_and_existing_directories(
    repo: Repository, tmp_path: Path, umask: int, verify: bool
) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for mode in MODES:
        for where in (src, src / "sub"):
            for kind, data in (("empty", b""), ("small", b"x" * 100)):
                f = where / f"{kind}-{where.name}-{mode:o}"
                f.write_bytes(data)
                os.chmod(f, mode)
    os.setxattr(src / "sub" / "small-sub-640", b"user.note", b"kept")
    want = modes_of(src)
    backup_paths(repo, BackupRequest(paths=[str(src)]))
    target = tmp_path / "t"
    target.mkdir()  # top-level files go into a directory restore did not make, those of sub/ into one it made
    result = restore(repo, RestoreRequest("latest:" + str(src), str(target), verify=verify))
    assert not result.errors and not result.warnings, result.errors + result.warnings
    assert modes_of(target) == want
    assert os.getxattr(target / "sub" / "small-sub-640", b"user.note") == b"kept"
