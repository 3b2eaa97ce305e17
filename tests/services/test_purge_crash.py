"""A purge killed with SIGKILL at any write leaves every snapshot restorable, and the next purge finishes.

The dying purge runs in a child process whose backend sends itself SIGKILL
before or after its N-th save or remove (lock files aside), for every N until
a purge completes. After each kill: ``check`` is clean, every original
snapshot restores either itself (whole) or through its rewrite (without the
purged file), and a purge run again (reading the journal the dying one left)
verifies that the purged bytes are gone from every pack.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from amber.ops.erasure import purge_repository
from amber.services import check as check_service
from amber.services.purge import PurgeRequest
from tests.conftest import PASSWORD
from tests.services.erasure_support import (
    backup,
    holds_bytes_of,
    make_repo,
    manifest,
    open_repo,
    random_bytes,
    restored,
    stored_plaintexts,
)

pytestmark = pytest.mark.slow

DYING_PURGE = textwrap.dedent("""
    import os, signal, sys
    from amber.repository import open_repository
    from amber.storage import open_backend
    from amber.storage.base import FileType
    from amber.ops.erasure import purge_repository
    from amber.services.purge import PurgeRequest

    class Dying:
        def __init__(self, inner, n):
            self.inner, self.n, self.location = inner, n, inner.location
        def __getattr__(self, name):
            return getattr(self.inner, name)
        def _tick(self, handle):
            if handle.type is FileType.LOCK:
                return
            self.n -= 1
            if self.n < 0:
                os.kill(os.getpid(), signal.SIGKILL)
        def save(self, handle, data):
            self._tick(handle)
            self.inner.save(handle, data)
            self._tick(handle)
        def remove(self, handle):
            self._tick(handle)
            self.inner.remove(handle)

    backend = Dying(open_backend(sys.argv[1]), int(sys.argv[2]))
    repo = open_repository(backend, os.environ["AMBER_PASSWORD"].encode())
    result = purge_repository(repo, PurgeRequest([sys.argv[3]]), sys.argv[4], catalog_enabled=False)
    sys.exit(0 if result.verified else 3)
""")


def test_purge_killed_at_every_write_leaves_every_snapshot_restorable(tmp_path: Path) -> None:
    template = make_repo(tmp_path / "template")
    secret = random_bytes(60_000, "crash secret")
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "secret.bin").write_bytes(secret)
    (src / "d" / "keep.bin").write_bytes(random_bytes(600_000, "keep"))
    expected: dict[str, dict[str, str]] = {}
    for i in range(2):
        (src / "notes.txt").write_bytes(f"v{i}".encode() * 2000)
        expected[backup(template, src)] = manifest(src)
    script = tmp_path / "dying.py"
    script.write_text(DYING_PURGE)
    env = {**os.environ, "AMBER_PASSWORD": PASSWORD}
    work, state = tmp_path / "work", tmp_path / "state"
    for step in range(400):
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
        shutil.copytree(template, work)
        args = [sys.executable, str(script), str(work), str(step), "secret.bin", str(state)]
        proc = subprocess.run(args, env=env, capture_output=True)
        if proc.returncode == 0:
            break
        assert proc.returncode == -9, proc.stderr.decode()
        _assert_restorable(work, src, expected, tmp_path)
        repo = open_repo(work)
        try:  # the next purge (with the journal the dying one left) completes and verifies
            result = purge_repository(repo, PurgeRequest(["secret.bin"]), str(state), catalog_enabled=False)
            assert result.verified, (step, result.report)
            assert not holds_bytes_of(stored_plaintexts(repo), secret), step
        finally:
            repo.close()
        _assert_restorable(work, src, expected, tmp_path, purged=True)
    else:
        raise AssertionError("the purge never completed")
    assert step >= 8, "too few crash points: rewrite, forget, repack and delete should all be hit"


def _assert_restorable(work: Path, src: Path, expected: dict[str, dict[str, str]], scratch: Path,
                       purged: bool = False) -> None:  # fmt: skip
    repo = open_repo(work)
    try:
        assert check_service.check(repo).ok
        snaps = repo.snapshots()
        for sid, files in expected.items():
            without = {k: v for k, v in files.items() if "secret" not in k}
            rewrites = [new for new, s in snaps.items() if s.original == sid]
            assert purged is False or sid not in snaps
            assert sid in snaps or rewrites, f"snapshot {sid[:8]} and its rewrite are both gone"
            if sid in snaps:
                assert restored(repo, sid, src, scratch) == files
            for new in rewrites:
                assert restored(repo, new, src, scratch) == without
    finally:
        repo.close()
