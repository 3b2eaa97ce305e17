"""Prune on real repositories: reclaiming, repacking, two-phase deletion, crashes.

Backups are real (``services.backup`` on real files); concurrent holders and
crashing prunes are real subprocesses.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import blake3
import pytest

from amber.engine.pruner import PruneOptions, PruneResult
from amber.errors import RepositoryLocked
from amber.repository import Repository, init_repository, open_repository
from amber.repository.crypto import KdfParams
from amber.services import check as check_service
from amber.services import prune as prune_service
from amber.services.backup import BackupRequest, backup_paths
from amber.services.restore import RestoreRequest, restore
from amber.storage import open_backend
from tests.conftest import PASSWORD

HOLDER = textwrap.dedent("""
    import os, sys
    from amber.repository import open_repository
    from amber.storage import open_backend
    from amber.services.backup import BackupRequest, backup_paths
    repo = open_repository(open_backend(sys.argv[1]), os.environ["AMBER_PASSWORD"].encode())
    with repo.lock(maintenance=len(sys.argv) > 3):
        print("locked", flush=True)
        sys.stdin.readline()
        if sys.argv[2] != "-":
            print(backup_paths(repo, BackupRequest(paths=[sys.argv[2]])).snapshot_id, flush=True)
        sys.stdin.readline()
""")

DYING_PRUNE = textwrap.dedent("""
    import os, sys
    from amber.repository import open_repository
    from amber.storage import open_backend
    from amber.services.prune import PruneOptions, prune

    class Dying:
        def __init__(self, inner, n):
            self.inner, self.n, self.location = inner, n, inner.location
        def __getattr__(self, name):
            return getattr(self.inner, name)
        def _tick(self):
            self.n -= 1
            if self.n < 0:
                os._exit(9)
        def save(self, handle, data):
            self._tick()
            self.inner.save(handle, data)
            self._tick()
        def remove(self, handle):
            self._tick()
            self.inner.remove(handle)

    backend = Dying(open_backend(sys.argv[1]), int(sys.argv[2]))
    repo = open_repository(backend, os.environ["AMBER_PASSWORD"].encode())
    prune(repo, PruneOptions(max_unused="0%"))
""")


def _random(n: int, *tag: object) -> bytes:
    return blake3.blake3(repr(tag).encode()).digest(length=n)


def _manifest(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = Path(dirpath, name)
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _open(path: Path) -> Repository:
    return open_repository(open_backend(str(path)), PASSWORD.encode())


def _backup(path: Path, src: Path) -> str:
    repo = _open(path)
    try:
        with repo.lock():
            return backup_paths(repo, BackupRequest(paths=[str(src)])).snapshot_id
    finally:
        repo.close()


def _prune(path: Path, **kw: object) -> PruneResult:
    repo = _open(path)
    try:
        return prune_service.prune(repo, PruneOptions(**kw))  # type: ignore[arg-type]
    finally:
        repo.close()


def _forget(path: Path, *snaps: str) -> None:
    for s in snaps:
        (path / "snapshots" / s).unlink()


def _packs(path: Path) -> set[str]:
    return {p.name for p in (path / "data").glob("*/*") if not p.name.startswith(".")}


def _assert_healthy(path: Path, expected: dict[str, dict[str, str]], src_root: Path, scratch: Path) -> None:
    """check --read-data passes and every expected snapshot restores byte-identically."""
    repo = _open(path)
    try:
        report = check_service.check(repo, read_data=True)
        assert report.ok, report.errors
        for sid, manifest in expected.items():
            target = scratch / f"r-{sid[:8]}"
            result = restore(repo, RestoreRequest(ref=sid, target=str(target)))
            assert not result.errors, result.errors
            assert _manifest(target / src_root.relative_to("/")) == manifest, sid[:8]
            shutil.rmtree(target)
    finally:
        repo.close()


@pytest.fixture
def repo_dir(tmp_path: Path) -> Path:
    """A repository whose key opens fast (these tests open it many times)."""
    path = tmp_path / "repo"
    init_repository(open_backend(str(path)), PASSWORD.encode(), KdfParams(1, 1024, 1)).close()
    return path


def _three_generations(src: Path, repo_dir: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Three backups of a tree whose files change a little each time: packs end up partly used."""
    snaps, manifests = [], []
    for gen in range(3):
        for i in range(12):
            if i % 3 == gen or gen == 0:
                (src / f"d{i % 2}").mkdir(parents=True, exist_ok=True)
                (src / f"d{i % 2}" / f"f{i}").write_bytes(_random(150_000 + i, gen, i))
        manifests.append(_manifest(src))
        snaps.append(_backup(repo_dir, src))
    return snaps, manifests


def test_prune_reclaims_and_repacks(repo_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    snaps, manifests = _three_generations(src, repo_dir)
    first_packs = _packs(repo_dir)
    _forget(repo_dir, snaps[0])
    before = sum(p.stat().st_size for p in (repo_dir / "data").glob("*/*"))

    dry = _prune(repo_dir, dry_run=True, max_unused="0%")
    assert _packs(repo_dir) == first_packs  # dry run changes nothing
    assert dry.plan.repack or dry.plan.delete

    result = _prune(repo_dir, max_unused="0%")
    assert result.deleted_packs >= 1 and result.plan.repacked.packs >= 1
    assert result.pending_packs == 0
    after = sum(p.stat().st_size for p in (repo_dir / "data").glob("*/*"))
    assert after < before
    _assert_healthy(repo_dir, {snaps[1]: manifests[1], snaps[2]: manifests[2]}, src, tmp_path)

    again = _prune(repo_dir, max_unused="0%")  # nothing left to do
    assert again.deleted_packs == 0 and not again.plan.doomed and again.plan.unused_after == 0


def test_recompress_rewrites_data(repo_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "text").write_bytes(b"".join(b"line %d of some compressible text\n" % i for i in range(40_000)))
    sid = _backup(repo_dir, src)
    old = _packs(repo_dir)
    size_before = sum(p.stat().st_size for p in (repo_dir / "data").glob("*/*"))
    result = _prune(repo_dir, recompress=19)
    assert result.plan.repacked.packs >= 1 and result.deleted_packs >= 1
    assert old - _packs(repo_dir), "the data pack was rewritten"
    assert sum(p.stat().st_size for p in (repo_dir / "data").glob("*/*")) < size_before
    _assert_healthy(repo_dir, {sid: _manifest(src)}, src, tmp_path)


def test_prune_never_deletes_what_an_older_backup_reuses(repo_dir: Path, tmp_path: Path) -> None:
    """A backup that loaded the index before the mark deduplicates against doomed packs:
    deletion waits for it, and the next prune rescues the packs its snapshot needs."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(5):
        (src / f"f{i}").write_bytes(_random(300_000, "old", i))
    expected = _manifest(src)
    old_snap = _backup(repo_dir, src)
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    env = {**os.environ, "AMBER_PASSWORD": PASSWORD}
    holder = subprocess.Popen(
        [sys.executable, str(script), str(repo_dir), str(src)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "locked"  # index loaded, lock held
        _forget(repo_dir, old_snap)
        packs = _packs(repo_dir)
        first = _prune(repo_dir)
        assert first.plan.deleted.packs == len(packs)  # everything is unreferenced now ...
        assert first.deleted_packs == 0 and first.pending_packs == len(packs)  # ... but kept
        assert _packs(repo_dir) == packs

        holder.stdin.write("\n")
        holder.stdin.flush()
        new_snap = holder.stdout.readline().strip()  # deduplicated against the doomed packs
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(timeout=60) == 0
    finally:
        holder.kill()
        holder.wait()
    second = _prune(repo_dir)
    assert second.rescued_packs >= 1
    _assert_healthy(repo_dir, {new_snap: expected}, src, tmp_path)
    third = _prune(repo_dir)
    assert third.pending_packs == 0 and not third.plan.doomed


def test_two_prunes_exclude_each_other_but_not_backups(repo_dir: Path, tmp_path: Path) -> None:
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    env = {**os.environ, "AMBER_PASSWORD": PASSWORD}
    for maintenance in (True, False):
        args = [sys.executable, str(script), str(repo_dir), "-"] + (["maintenance"] if maintenance else [])
        holder = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
        try:
            assert holder.stdout is not None and holder.stdin is not None
            assert holder.stdout.readline().strip() == "locked"
            if maintenance:
                with pytest.raises(RepositoryLocked, match="maintenance"):
                    _prune(repo_dir)
            else:
                _prune(repo_dir)  # a shared lock (a backup) does not stop prune
            holder.stdin.write("\n\n")
            holder.stdin.flush()
            assert holder.wait(timeout=30) == 0
        finally:
            holder.kill()
            holder.wait()


def test_prune_killed_at_every_step_leaves_a_consistent_repository(repo_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    snaps, manifests = _three_generations(src, repo_dir)
    _forget(repo_dir, snaps[0])
    template = tmp_path / "template"
    shutil.copytree(repo_dir, template)
    script = tmp_path / "dying.py"
    script.write_text(DYING_PRUNE)
    env = {**os.environ, "AMBER_PASSWORD": PASSWORD}
    expected = {snaps[1]: manifests[1], snaps[2]: manifests[2]}
    work = tmp_path / "work"
    for step in range(200):
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(template, work)
        args = [sys.executable, str(script), str(work), str(step)]
        proc = subprocess.run(args, env=env, capture_output=True)
        if proc.returncode == 0:
            break
        assert proc.returncode == 9, proc.stderr.decode()
        repo = _open(work)
        try:  # right after the crash: structurally sound, nothing referenced is lost
            report = check_service.check(repo)
            assert report.ok, (step, report.errors)
        finally:
            repo.close()
        finished = _prune(work, max_unused="0%")  # the next prune completes the job
        assert finished.pending_packs == 0, step
        _assert_healthy(work, expected, src, tmp_path)
        assert not _prune(work, max_unused="0%").plan.doomed
    else:
        raise AssertionError("the prune never completed")
    assert step >= 6, "too few crash points: the scenario should delete, repack and rewrite the index"


def test_index_loaded_before_a_prune_is_reloaded_on_locking(repo_dir: Path, tmp_path: Path) -> None:
    """A process that listed the index before prune ran and locks afterwards must not
    deduplicate against the packs prune deleted: locking reloads the index."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "data").write_bytes(_random(400_000, "reload"))
    old = _backup(repo_dir, src)
    early = _open(repo_dir)  # index loaded now, no lock yet
    try:
        _forget(repo_dir, old)
        assert _prune(repo_dir).deleted_packs >= 1
        with early.lock():
            new = backup_paths(early, BackupRequest(paths=[str(src)])).snapshot_id
    finally:
        early.close()
    _assert_healthy(repo_dir, {new: _manifest(src)}, src, tmp_path)
