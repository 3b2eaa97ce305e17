"""Restore with forked workers: the same tree as with threads, and a worker's end never lost."""

from __future__ import annotations

import errno
import faulthandler
import os
import random
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amber.cancel import CancelToken
from amber.engine import restore_procs, restorer
from amber.engine.restore_files import ContentWriter
from amber.engine.restore_procs import FILE_COST, split_batch
from amber.engine.restore_report import RestoreFile
from amber.engine.restorer import RestoreOptions, Restorer, RestoreResult
from amber.errors import AmberError, Interrupted
from amber.repository import Node, Repository
from amber.repository.packer import Packer
from amber.services.backup import BackupRequest, backup_paths
from amber.services.restore import RestoreRequest, restore, restore_processes
from amber.services.snapshots import SnapshotFilter, resolve
from amber.storage.base import FileType, Handle
from amber.storage.faults import FaultInjectingBackend, FaultPlan
from amber.storage.local import LocalBackend
from amber.storage.mapped import MappedRange
from amber.storage.ratelimit import RateLimitedBackend
from tests.conftest import PASSWORD, AmberCli


def _files(sizes: list[int]) -> list[RestoreFile]:
    nodes = [Node(name=b"f%d" % i, type="file", size=s) for i, s in enumerate(sizes)]
    return [RestoreFile(None, n.name, b"/" + n.name, n) for n in nodes]  # type: ignore[arg-type]


MiB = 1 << 20


@pytest.mark.parametrize(
    ("sizes", "parts", "expected"),
    [
        ([], 2, []),
        ([0], 2, [[0]]),
        ([0, 0], 2, [[0], [1]]),
        ([10 * FILE_COST, 0, 0, 0], 2, [[0], [1, 2, 3]]),
        ([0, 0, 0], 1, [[0, 1, 2]]),
        ([390 * MiB, 260 * MiB, 260 * MiB, 130 * MiB], 2, [[0, 3], [1, 2]]),  # large files: evenly
        ([0] * 100, 2, [list(range(50)), list(range(50, 100))]),  # small files: consecutive runs
        ([0] * 30 + [8 * MiB] + [0] * 30, 2, [[30], [*range(30), *range(31, 61)]]),
    ],
)
def test_a_batch_is_shared_among_workers_at_about_equal_cost(
    sizes: list[int], parts: int, expected: list[list[int]]
) -> None:
    files = _files(sizes)
    assert [[files.index(f) for f in run] for run in split_batch(files, parts)] == expected


@given(st.lists(st.integers(0, 1 << 24), max_size=60), st.integers(1, 4))
def test_every_file_goes_to_one_worker_and_no_worker_gets_far_more_than_its_share(
    sizes: list[int], parts: int
) -> None:
    files = _files(sizes)
    shares = split_batch(files, parts)
    index = {id(f): i for i, f in enumerate(files)}
    assert sorted(index[id(f)] for share in shares for f in share) == list(range(len(files)))
    assert len(shares) <= parts and all(shares)
    assert all([index[id(f)] for f in share] == sorted(index[id(f)] for f in share) for share in shares)
    costs = [s + FILE_COST for s in sizes]
    for share in shares:  # greedy bound: at most a fair share plus the largest file
        assert sum(f.node.size + FILE_COST for f in share) <= sum(costs) / parts + max(costs)


def _tree(src: Path) -> None:
    """Small, multi-blob, sparse, empty and hard-linked files, modes and a symlink."""
    rng = random.Random(7)
    for d in range(5):
        (src / f"d{d}" / "sub").mkdir(parents=True)
        for i in range(30):
            rel = src / (f"d{d}/sub/f{i}" if i % 3 else f"d{d}/f{i}")
            rel.write_bytes(rng.randbytes(rng.choice([0, 1, 700, 9000, 40_000])))
            os.chmod(rel, rng.choice([0o600, 0o644, 0o755, 0o400]))
            os.utime(rel, ns=(1_600_000_000_000_000_000 + i, 1_600_000_000_000_000_000 + d * 1000 + i))
    (src / "big").write_bytes(rng.randbytes(5 << 20))
    with open(src / "sparse", "wb") as f:
        f.write(b"head")
        f.seek(3 << 20)
        f.write(b"tail")
    os.link(src / "d0" / "f0", src / "d4" / "late-link")
    os.symlink("d0/f0", src / "link")
    os.chmod(src / "d3", 0o500)


def _state(root: Path) -> dict[str, tuple[int, int, bytes, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            s = p.lstat()
            body = os.readlink(p).encode() if p.is_symlink() else p.read_bytes() if p.is_file() else b""
            mtime = s.st_mtime_ns if not stat.S_ISDIR(s.st_mode) else 0
            out[str(p.relative_to(root))] = (s.st_mode, mtime, body, s.st_nlink)
    return out


@pytest.fixture
def backed_up(repo: Repository, tmp_path: Path) -> tuple[Repository, bytes, Path]:
    src = tmp_path / "src"
    src.mkdir()
    _tree(src)
    backup_paths(repo, BackupRequest(paths=[str(src)]))
    _, snap = resolve(repo, "latest", SnapshotFilter())
    tree_id = repo.load_tree(snap.tree).nodes[0].subtree
    for name in str(src).strip("/").split("/")[1:]:
        tree_id = next(n for n in repo.load_tree(tree_id).nodes if n.name == name.encode()).subtree
    return repo, tree_id, src


def _restore(repo: Repository, tree_id: bytes, target: Path, processes: int, **kw: object) -> RestoreResult:
    options = RestoreOptions(processes=processes, **kw)  # type: ignore[arg-type]
    return Restorer(repo.load_tree, repo.blobs, options, blob_id=repo.key.blob_id).restore_tree(
        tree_id, os.fsencode(target)
    )


@pytest.fixture
def every_batch_forks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(restore_procs, "INLINE_FILES", -1)
    monkeypatch.setattr(restorer, "_BATCH_FILES", 7)  # many batches, each split between workers


@pytest.mark.usefixtures("every_batch_forks")
@pytest.mark.parametrize(("verify", "large_file"), [(False, 64 * MiB), (True, 64 * MiB), (False, MiB)])
def test_forked_workers_restore_what_threads_restore(
    backed_up: tuple[Repository, bytes, Path], tmp_path: Path, verify: bool, large_file: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """At ``large_file`` = 1 MiB, ``big`` and ``sparse`` go to a worker with threads, the rest to workers."""
    monkeypatch.setattr(restore_procs, "LARGE_FILE", large_file)
    repo, tree_id, src = backed_up
    by_threads = _restore(repo, tree_id, tmp_path / "threads", 1, verify=verify)
    by_workers = _restore(repo, tree_id, tmp_path / "workers", 2, verify=verify)
    assert not by_workers.errors and not by_threads.errors
    for field in ("files", "dirs", "bytes", "verified", "blobs_written", "bytes_written"):
        assert getattr(by_workers, field) == getattr(by_threads, field), field
    assert _state(tmp_path / "workers") == _state(tmp_path / "threads") == _state(src)
    assert (tmp_path / "workers" / "d4" / "late-link").stat().st_ino == (
        tmp_path / "workers" / "d0" / "f0"
    ).stat().st_ino
    assert os.stat(tmp_path / "workers" / "sparse").st_blocks * 512 < 1 << 20  # holes stay holes


class _Heard:
    """A progress someone listens to: every call, with when it came."""

    def __init__(self) -> None:
        self.bytes: list[tuple[float, int]] = []
        self.files = 0

    def file_done(self, path: bytes, size: int, status: str) -> None:
        self.files += 1

    def bytes_done(self, n: int) -> None:
        self.bytes.append((time.monotonic(), n))

    def error(self, path: bytes, message: str) -> None:
        raise AssertionError(message)


def test_a_large_files_worker_reports_its_bytes_while_it_writes(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its progress comes through a shared page pack by pack, and no byte is counted twice."""
    repo.blobs._packer = Packer(target=1 << 20)  # the large file spans several packs
    src = tmp_path / "src"
    src.mkdir()
    (src / "image").write_bytes(random.Random(3).randbytes(6 << 20))
    (src / "small").write_bytes(b"small")
    backup_paths(repo, BackupRequest(paths=[str(src)]))
    monkeypatch.setattr(restore_procs, "LARGE_FILE", 1 << 20)
    monkeypatch.setattr(restore_procs, "_PROGRESS_EVERY", 0.01)
    slow_write = ContentWriter._write

    def slow(self: ContentWriter, *args: object) -> None:
        time.sleep(0.05)  # in the worker (inherited by the fork): it writes for a while
        slow_write(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(ContentWriter, "_write", slow)
    heard = _Heard()
    result = restore(repo, RestoreRequest(ref=f"latest:{src}", target=str(tmp_path / "t")), heard)
    assert not result.errors and (tmp_path / "t" / "image").read_bytes() == (src / "image").read_bytes()
    assert sum(n for _, n in heard.bytes) == result.bytes_written == (6 << 20) + 5
    assert heard.files == result.files == 2
    assert len(heard.bytes) > 2  # in steps as it wrote, not once at its end
    assert heard.bytes[-1][0] - heard.bytes[0][0] > 0.1


def test_each_directory_gets_its_metadata_after_everything_below_it(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Else a directory made unsearchable (mode 0) would block a non-root restore of what is below."""
    src = tmp_path / "src"
    for rel in ("a/b/c", "a/b/d", "a/e", "f/g/h/i", "f/j", "k"):
        (src / rel).mkdir(parents=True)
        (src / rel / "file").write_bytes(rel.encode())
    backup_paths(repo, BackupRequest(paths=[str(src)]))
    applied: list[bytes] = []
    real = restorer.apply_to_fd

    def recording(fd: int, node: Node, warnings: list[str], label: bytes, made: object = None) -> None:
        if node.type == "dir":
            applied.append(label)
        real(fd, node, warnings, label, made)  # type: ignore[arg-type]

    monkeypatch.setattr(restorer, "apply_to_fd", recording)
    target = tmp_path / "t"
    result = restore(repo, RestoreRequest(ref=f"latest:{src}", target=str(target)))
    assert not result.errors
    assert sorted(applied) == sorted(os.fsencode(p) for p, _, _ in os.walk(target) if p != str(target))
    for i, path in enumerate(applied):
        assert not [p for p in applied[i + 1 :] if p.startswith(path + b"/")], path  # none below it later


@pytest.mark.usefixtures("every_batch_forks")
def test_one_large_files_worker_runs_at_a_time(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large files in many batches: each batch's large-file worker waits for the one before
    (else a tree of many large files would have them all in memory at once)."""
    src = tmp_path / "src"
    src.mkdir()
    rng = random.Random(5)
    for i in range(12):  # batches of 7: two batches of large files, then one more
        (src / f"image{i:02}").write_bytes(rng.randbytes(MiB + i))
    (src / "small").write_bytes(b"small")
    backup_paths(repo, BackupRequest(paths=[str(src)]))
    monkeypatch.setattr(restore_procs, "LARGE_FILE", MiB)
    slow_write = ContentWriter._write

    def slow(self: ContentWriter, *args: object) -> None:
        time.sleep(0.05)  # the walk outruns the large-file workers
        slow_write(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(ContentWriter, "_write", slow)
    real_fork = restore_procs.ForkedWriter._fork
    running: list[int] = []

    def counting(self: restore_procs.ForkedWriter, part: list[RestoreFile], large: bool = False) -> None:
        if large:
            running.append(sum(wk.large for wk in self._live.values()))
        real_fork(self, part, large)

    monkeypatch.setattr(restore_procs.ForkedWriter, "_fork", counting)
    result = restore(repo, RestoreRequest(ref=f"latest:{src}", target=str(tmp_path / "t")))
    assert not result.errors and result.files == 13
    assert len(running) == 2 and running == [0, 0]  # the old code forked the second beside the first
    for i in range(12):
        assert (tmp_path / "t" / f"image{i:02}").read_bytes() == (src / f"image{i:02}").read_bytes()


@pytest.mark.usefixtures("every_batch_forks")
def test_a_second_run_resumes_in_the_workers(
    backed_up: tuple[Repository, bytes, Path], tmp_path: Path
) -> None:
    repo, tree_id, src = backed_up
    target = tmp_path / "t"
    _restore(repo, tree_id, target, 2)
    (target / "big").write_bytes((target / "big").read_bytes()[:1000] + b"damaged")
    result = _restore(repo, tree_id, target, 2)
    assert not result.errors and result.blobs_skipped > 0
    assert _state(target) == _state(src)


@pytest.mark.usefixtures("every_batch_forks")
def test_a_worker_that_is_killed_leaves_its_files_reported(
    backed_up: tuple[Repository, bytes, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, tree_id, _ = backed_up
    real = ContentWriter.write_now

    def dies_on_big(self: ContentWriter, files: list[RestoreFile]) -> None:
        if any(f.name == b"big" for f in files):
            os.kill(os.getpid(), signal.SIGKILL)
        real(self, files)

    monkeypatch.setattr(ContentWriter, "write_now", dies_on_big)
    before = set(_children(os.getpid()))  # other tests' servers may live in this process too
    result = _restore(repo, tree_id, tmp_path / "t", 2)
    assert any(e.endswith("/big: not restored: its worker process was killed by signal SIGKILL")
               for e in result.errors), result.errors  # fmt: skip
    assert not [e for e in result.errors if "/d2/" in e], result.errors  # the other workers restored theirs
    assert set(_children(os.getpid())) <= before  # every worker reaped


@pytest.mark.usefixtures("every_batch_forks")
def test_without_a_process_to_fork_the_walks_process_writes_the_batch(
    backed_up: tuple[Repository, bytes, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, tree_id, src = backed_up
    forks = 0
    real_fork = os.fork

    def fork_fails_every_other_time() -> int:
        nonlocal forks
        forks += 1
        if forks % 2:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        return real_fork()

    monkeypatch.setattr(os, "fork", fork_fails_every_other_time)
    result = _restore(repo, tree_id, tmp_path / "t", 2)
    assert forks > 2 and not result.errors
    assert _state(tmp_path / "t") == _state(src)


@pytest.mark.usefixtures("every_batch_forks")
def test_a_worker_that_fails_names_why(
    backed_up: tuple[Repository, bytes, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, tree_id, _ = backed_up

    def fails(self: ContentWriter, files: list[RestoreFile]) -> None:
        raise MemoryError("no room")

    monkeypatch.setattr(ContentWriter, "write_now", fails)
    result = _restore(repo, tree_id, tmp_path / "t", 2)
    failed = [e for e in result.errors if "its worker process failed: MemoryError: no room" in e]
    others = set(result.errors) - set(failed)
    assert failed and all(e.endswith("late-link: cannot hardlink: its first link was not restored")
                          for e in others)  # fmt: skip


@pytest.mark.usefixtures("every_batch_forks")
def test_a_cancel_stops_the_workers(
    backed_up: tuple[Repository, bytes, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, tree_id, _ = backed_up
    cancel = CancelToken()
    real = ContentWriter.write_now

    def slow(self: ContentWriter, files: list[RestoreFile]) -> None:
        time.sleep(60)  # until the SIGTERM of the cancel
        real(self, files)

    monkeypatch.setattr(ContentWriter, "write_now", slow)
    timer = threading.Timer(0.5, cancel.cancel, [Interrupted("interrupted")])  # as a signal handler would
    timer.start()
    options = RestoreOptions(processes=2)
    before = set(_children(os.getpid()))
    r = Restorer(repo.load_tree, repo.blobs, options, blob_id=repo.key.blob_id, cancel=cancel)
    with pytest.raises(AmberError, match="interrupted"):  # the workers wait for ever: the cancel ends them
        r.restore_tree(tree_id, os.fsencode(tmp_path / "t"))
    timer.join()
    assert set(_children(os.getpid())) <= before  # every worker reaped


def test_only_a_plain_local_repository_gets_worker_processes(repo: Repository) -> None:
    cores = len(os.sched_getaffinity(0))
    assert restore_processes(repo) == (2 if cores >= 2 else 1)
    plain = repo.backend
    for wrapper in (RateLimitedBackend(plain, None, None), FaultInjectingBackend(plain, FaultPlan(0.0))):
        repo.backend = wrapper
        assert restore_processes(repo) == 1


def _children(pid: int) -> list[int]:
    """The live processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def test_ctrl_c_stops_the_restore_and_its_workers(cli: AmberCli, tmp_path: Path) -> None:
    """SIGINT to the restore's process group, as a terminal sends it: exit 130, no worker left."""
    src = tmp_path / "src"
    for d in range(80):  # enough batches that the signal comes while some are still to be written
        (src / f"d{d}").mkdir(parents=True)
        for i in range(100):
            (src / f"d{d}" / f"f{i}").write_bytes(b"%d %d " % (d, i) * 300)
    cli.run("backup", str(src))
    target = tmp_path / "t"
    proc = subprocess.Popen([sys.executable, "-m", "amber", "restore", "latest", "--target", str(target)],
                            env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while not (workers := _children(proc.pid)):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.002)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()[-3000:]
    assert "amber: interrupted" in err.decode() and "Traceback" not in err.decode()
    assert not _children(proc.pid) and not any(Path(f"/proc/{pid}").exists() for pid in workers)
    cli.run("restore", "latest", "--target", str(target))  # a rerun completes what was left
    restored = target / src.relative_to("/")
    assert sum(1 for _ in restored.rglob("f*")) == 8000
    assert (restored / "d79" / "f99").read_bytes() == b"79 99 " * 300


@pytest.mark.usefixtures("every_batch_forks")
def test_workers_map_their_packs_and_only_they_do(
    backed_up: tuple[Repository, bytes, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pack read by a worker is mapped, not copied (``storage.mapped``); the restorer's own
    process, which a SIGBUS would kill, loads what it reads."""
    repo, tree_id, src = backed_up
    log = tmp_path / "loads"
    real_load, real_map = LocalBackend.load, LocalBackend.map_range

    def record(what: str, handle: Handle) -> None:
        if handle.type is FileType.PACK:
            with open(log, "a") as f:
                f.write(f"{what} {'restorer' if os.getpid() == restorer_pid else 'worker'}\n")

    def load(self: LocalBackend, handle: Handle, *args: Any, **kwargs: Any) -> bytes:
        record("load", handle)
        return real_load(self, handle, *args, **kwargs)

    def map_range(self: LocalBackend, handle: Handle, offset: int, length: int) -> MappedRange | None:
        record("map", handle)
        return real_map(self, handle, offset, length)

    restorer_pid = os.getpid()
    monkeypatch.setattr(LocalBackend, "load", load)
    monkeypatch.setattr(LocalBackend, "map_range", map_range)
    result = _restore(repo, tree_id, tmp_path / "t", 2)
    assert not result.errors and _state(tmp_path / "t") == _state(src)
    seen = set(log.read_text().splitlines())
    assert "map worker" in seen and "load worker" not in seen and "map restorer" not in seen, seen


@pytest.mark.usefixtures("every_batch_forks")
def test_a_worker_killed_by_sigbus_when_its_pack_shrinks_is_reported(
    backed_up: tuple[Repository, bytes, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone truncates a pack while a worker has it mapped: that worker dies of SIGBUS and
    its files are reported; the restorer goes on and reaps it."""
    repo, tree_id, _ = backed_up
    real_map = LocalBackend.map_range

    def shrinks(self: LocalBackend, handle: Handle, offset: int, length: int) -> MappedRange | None:
        got = real_map(self, handle, offset, length)
        os.truncate(self._file(handle), 0)
        faulthandler.disable()  # the death below is expected: no dump
        return got

    monkeypatch.setattr(LocalBackend, "map_range", shrinks)
    before = set(_children(os.getpid()))
    result = _restore(repo, tree_id, tmp_path / "t", 2)
    killed = "not restored: its worker process was killed by signal SIGBUS"
    assert any(e.endswith(killed) for e in result.errors), result.errors
    assert set(_children(os.getpid())) <= before


_SIGNAL_AT_FORK = """
import os, signal, sys
from amber.engine.restorer import RestoreOptions, Restorer
from amber.repository import open_repository
from amber.storage.url import open_backend

repo = open_repository(open_backend(sys.argv[1]), sys.argv[2].encode())
os.register_at_fork(after_in_child=lambda: os.kill(os.getpid(), int(sys.argv[5])))
options = RestoreOptions(processes=2)
result = Restorer(repo.load_tree, repo.blobs, options, blob_id=repo.key.blob_id).restore_tree(
    bytes.fromhex(sys.argv[3]), os.fsencode(sys.argv[4]))
print(result.files, len(result.errors))
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP])
def test_a_signal_in_the_instant_after_a_fork_never_reaches_the_restorers_handler_in_the_worker(
    backed_up: tuple[Repository, bytes, Path], repo_path: Path, tmp_path: Path, signum: int
) -> None:
    """A Ctrl-C that lands while a worker is being forked: the worker drops it (before its
    dispositions were set, the restorer's handler ran in the worker: a second "stop")."""
    _, tree_id, src = backed_up
    target = tmp_path / "t"
    args = [str(repo_path), PASSWORD, tree_id.hex(), str(target), str(signum)]
    proc = subprocess.run([sys.executable, "-c", _SIGNAL_AT_FORK, *args], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr[-2000:]
    assert proc.stdout.split()[1] == "0" and _state(target) == _state(src)
