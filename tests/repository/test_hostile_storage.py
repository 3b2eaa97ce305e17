"""A hostile repository: oversized objects planted by anyone who can write to the storage,
and bombs sealed by a key holder (issue 11, design §3 "Size limits").

Commands run as real subprocesses with their address space capped by
``resource.setrlimit(RLIMIT_AS)``: a normal ``snapshots``, ``check`` or ``restore``
of these small repositories needs under 100 MiB, so a cap of 600 MiB fails any
command that reads a planted multi-GiB object or inflates a bomb, while the
objects themselves cost only a few KiB of disk (sparse files, RLE zstd frames).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from amber.errors import IntegrityError, ObjectTooLarge, is_native_panic
from amber.repository import Repository, open_repository
from amber.repository.codec import EncodedBlob
from amber.repository.crypto import MasterKey, native_error
from amber.repository.index import decode_index, encode_index
from amber.repository.limits import MAX_TREE_BYTES
from amber.repository.model import Node, Snapshot, Tree, format_time
from amber.repository.pack import BlobType, PackedBlob
from amber.storage import open_backend
from amber.storage.base import FileType, Handle
from tests.conftest import PASSWORD, AmberCli, CliResult

MEMORY_CAP = 600 << 20
SPARSE = 6 << 30
KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30


def run_capped(cli: AmberCli, *args: str, timeout: float = 120) -> CliResult:
    """``amber ARGS`` in a subprocess whose address space is capped at MEMORY_CAP."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))

    proc = subprocess.run(
        [sys.executable, "-m", "amber", *args], capture_output=True, env=cli.env, timeout=timeout,
        preexec_fn=cap,
    )  # fmt: skip
    out, err = proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    return CliResult(proc.returncode, out, err, proc.stdout)


def assert_clean(result: CliResult) -> None:
    """No traceback, no "internal error", no Rust panic: every complaint is one line."""
    for bad in ("Traceback", "internal error", "MemoryError", "panicked", "PanicException"):
        assert bad not in result.stderr, result.stderr


def sparse(path: Path, size: int = SPARSE, tail: bytes = b"") -> None:
    """A file of ``size`` bytes that takes no disk space (its last bytes ``tail``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        os.truncate(f.fileno(), size - len(tail))
        f.seek(size - len(tail))
        f.write(tail)
    assert path.stat().st_size == size
    assert path.stat().st_blocks * 512 < 1 * MIB


@pytest.fixture
def backed_up(cli: AmberCli, tmp_path: Path) -> AmberCli:
    """A repository with one real snapshot of two files."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(b"hello")
    (src / "b").write_bytes(os.urandom(300 * KIB))
    cli.run("backup", str(src))
    return cli


def _snapshot_ids(cli: AmberCli) -> list[str]:
    return [s["short_id"] for s in json.loads(cli.run("snapshots", "--json").stdout)]


# -- planted by anyone who can write to the storage -------------------------------------


def test_sparse_6gib_index_file_leaves_snapshots_and_check_bounded(backed_up: AmberCli) -> None:
    good = _snapshot_ids(backed_up)
    sparse(backed_up.repo / "index" / ("ab" * 32))
    listed = run_capped(backed_up, "snapshots")
    assert_clean(listed)
    assert listed.returncode == 0, listed.stderr
    assert good[0] in listed.stdout
    checked = run_capped(backed_up, "check")
    assert_clean(checked)
    assert checked.returncode == 18  # CheckFailed: the index file is damage
    assert f"index {'ab' * 8} cannot be read" in checked.stdout + checked.stderr


def test_sparse_6gib_snapshot_is_reported_and_skipped(backed_up: AmberCli) -> None:
    good = _snapshot_ids(backed_up)
    sparse(backed_up.repo / "snapshots" / ("cd" * 32))
    listed = run_capped(backed_up, "snapshots")
    assert_clean(listed)
    assert listed.returncode == 0, listed.stderr
    assert good[0] in listed.stdout
    assert "snapshot cdcdcdcd is unreadable" in listed.stderr
    assert "6 GiB, over the 64 MiB limit" in listed.stderr
    checked = run_capped(backed_up, "check")
    assert_clean(checked)
    assert checked.returncode == 18
    assert "snapshot cdcdcdcd" in checked.stdout + checked.stderr


@pytest.mark.slow
def test_sparse_6gib_lock_is_ignored_and_reported_by_check(backed_up: AmberCli, tmp_path: Path) -> None:
    sparse(backed_up.repo / "locks" / ("ef" * 32))
    checked = run_capped(backed_up, "check")
    assert_clean(checked)
    assert checked.returncode == 0, checked.stdout + checked.stderr  # a lock is no damage: a warning
    assert f"lock {'ef' * 8} cannot be read" in checked.stdout + checked.stderr
    # commands that take a lock ignore it too
    (tmp_path / "more").mkdir()
    backed_up.run("backup", str(tmp_path / "more"))
    assert len(_snapshot_ids(backed_up)) == 2


@pytest.mark.slow
def test_a_pack_trailer_claiming_a_3gib_header(backed_up: AmberCli) -> None:
    trailer = (3 * GIB).to_bytes(4, "little")
    big, small = "12" * 32, "34" * 32
    sparse(backed_up.repo / "data" / big[:2] / big, 4 * GIB, trailer)  # room for the header it claims
    (backed_up.repo / "data" / small[:2] / small).write_bytes(os.urandom(1000) + trailer)
    repaired = run_capped(backed_up, "repair", "index")
    assert_clean(repaired)
    assert repaired.returncode == 0  # each bad pack is a warning; the good ones are indexed
    out = repaired.stdout + repaired.stderr
    assert f"{big[:16]}: pack {big[:16]}: pack header length ({3 * GIB} bytes) is over the" in out
    assert f"{small[:16]}: pack {small[:16]}: pack header length ({3 * GIB} bytes) exceeds" in out
    assert len(_snapshot_ids(backed_up)) == 1
    backed_up.run("check")  # the real packs were indexed again


def test_pack_header_checks_raise_integrity_errors(repo: Repository) -> None:
    trailer = (3 * GIB).to_bytes(4, "little")
    small = "56" * 32
    repo.backend.save(Handle(FileType.PACK, small), os.urandom(1000) + trailer)
    with pytest.raises(IntegrityError, match="exceeds the pack's size"):
        repo.blobs.read_pack_header(small, 1004)
    with pytest.raises(IntegrityError, match="exceeds the pack's size"):
        repo.blobs.read_pack(small)


def _plant_key(cli: AmberCli, edit: Callable[[dict[str, object]], None]) -> str:
    keys = cli.repo / "keys"
    original = next(keys.iterdir()).read_bytes()
    doc = json.loads(original)
    edit(doc)
    raw = json.dumps(doc).encode()
    name = hashlib.sha256(raw).hexdigest()
    (keys / name).write_bytes(raw)
    return name


@pytest.mark.parametrize(
    ("params", "why"),
    [
        pytest.param({"time_cost": 2**31, "memory_kib": 8192, "parallelism": 1}, "time cost", id="time"),
        pytest.param({"time_cost": 1, "memory_kib": 2**40, "parallelism": 1}, "memory", id="memory"),
        pytest.param({"time_cost": 1, "memory_kib": 8192, "parallelism": 2**20}, "parallelism", id="lanes"),
        pytest.param({"time_cost": 16, "memory_kib": 1 << 20, "parallelism": 1}, "time cost x", id="work"),
    ],
)
def test_absurd_kdf_cost_in_a_key_file(cli: AmberCli, params: dict[str, int], why: str) -> None:
    real = next((cli.repo / "keys").iterdir())
    planted = _plant_key(cli, lambda doc: doc.update(kdf_params=params))
    started = time.monotonic()
    assert run_capped(cli, "snapshots", timeout=60).returncode == 0  # the real key still opens
    real.rename(cli.repo / "real-key-moved-away")
    alone = run_capped(cli, "snapshots", timeout=60)
    assert_clean(alone)
    assert alone.returncode == 12  # WrongPassword, with the reason the planted key was refused
    assert f"{planted[:8]}: key file has unusable KDF parameters: {why}" in alone.stderr
    assert len(alone.stderr.strip().splitlines()) == 1
    assert time.monotonic() - started < 30  # refused, not derived


def test_a_new_key_above_the_kdf_bounds_is_refused(repo: Repository) -> None:
    from amber.errors import UsageError
    from amber.repository.crypto import KdfParams

    with pytest.raises(UsageError, match="time cost 100 is over"):
        repo.add_key(b"pw", KdfParams(time_cost=100, memory_kib=8192, parallelism=1))


# -- sealed by a key holder ---------------------------------------------------------------


def rle_frame(total: int, state_size: bool) -> bytes:
    """A zstd frame of RLE blocks that inflates to ``total`` zero bytes: 4 bytes per 128 KiB,
    so 4 GiB fit in 128 KiB. ``state_size``: the frame header states ``total``."""
    block = 128 * KIB
    out = bytearray(b"\x28\xb5\x2f\xfd" + bytes([0xC0 if state_size else 0x00, 0x38]))  # window 128 KiB
    if state_size:
        out += total.to_bytes(8, "little")
    count = total // block
    for i in range(count):
        out += (int(i == count - 1) | 1 << 1 | block << 3).to_bytes(3, "little") + b"\0"
    return bytes(out)


def _open(cli: AmberCli) -> Repository:
    return open_repository(open_backend(str(cli.repo)), PASSWORD.encode())


def _snapshot_of(repo: Repository, files: dict[bytes, tuple[bytes, int]]) -> None:
    """A snapshot whose root lists ``files``: name -> (blob ID, size)."""
    nodes = [
        Node(name=name, type="file", mode=0o644, size=size, content=[blob_id])
        for name, (blob_id, size) in sorted(files.items())
    ]
    tree_id, _ = repo.save_tree(Tree(nodes))
    repo.blobs.flush()
    repo.save_snapshot(Snapshot(format_time(dt.datetime.now(dt.UTC)), tree_id, ["/"], "attacker"))


def _good_file(repo: Repository) -> tuple[bytes, int]:
    data = b"good content\n" * 100
    blob_id = repo.key.blob_id(data)
    repo.blobs.save(BlobType.DATA, data, blob_id)
    return blob_id, len(data)


@pytest.mark.parametrize(
    ("frame", "index_says", "error"),
    [
        pytest.param(rle_frame(4 * GIB, True), 1 * MIB, "the frame states 4294967296", id="stated-4gib"),
        pytest.param(rle_frame(4 * GIB, False), 1 * MIB, "bad compression", id="unstated-4gib"),
        pytest.param(rle_frame(4 * GIB, True), 4 * GIB, "not in the index", id="indexed-4gib"),
    ],
)
def test_zstd_bomb_in_a_data_blob(
    cli: AmberCli, tmp_path: Path, frame: bytes, index_says: int, error: str
) -> None:
    assert len(frame) < 200 * KIB
    repo = _open(cli)
    good = _good_file(repo)
    repo.blobs.flush()  # its own index file: an index file with a row over the limits is refused whole
    bomb_id = hashlib.sha256(frame).digest()
    repo.blobs.save_encoded(BlobType.DATA, bomb_id, EncodedBlob(frame, index_says, b""))
    repo.blobs.flush()  # and the tree, in the next one
    _snapshot_of(repo, {b"bomb": (bomb_id, index_says), b"good": good})
    repo.close()
    target = tmp_path / "target"
    restored = run_capped(cli, "restore", "latest", "--target", str(target))
    assert_clean(restored)
    assert restored.returncode == 14  # IntegrityError: one line per damaged file, one summary
    assert error in restored.stderr
    assert restored.stderr.strip().splitlines()[-1] == "amber: 1 file(s) could not be restored intact"
    assert (target / "good").read_bytes() == b"good content\n" * 100
    checked = run_capped(cli, "check", "--read-data")
    assert_clean(checked)
    assert checked.returncode == 18


def test_zstd_bomb_in_a_tree_blob(cli: AmberCli) -> None:
    repo = _open(cli)
    frame = rle_frame(4 * GIB, False)
    tree_id = hashlib.sha256(frame).digest()
    repo.blobs.save_encoded(BlobType.TREE, tree_id, EncodedBlob(frame, MAX_TREE_BYTES, b""))
    repo.blobs.flush()
    repo.save_snapshot(Snapshot(format_time(dt.datetime.now(dt.UTC)), tree_id, ["/"], "attacker"))
    repo.close()
    listed = run_capped(cli, "ls", "latest")
    assert_clean(listed)
    assert listed.returncode == 14, listed.stderr
    assert "bad compression" in listed.stderr
    assert all(line.startswith(("error: ", "amber: ")) for line in listed.stderr.strip().splitlines())


def test_index_entry_of_100_tib(cli: AmberCli, tmp_path: Path) -> None:
    repo = _open(cli)
    good = _good_file(repo)
    repo.blobs.flush()
    pack = next(iter(repo.blobs.index.packs()))
    bomb_id = os.urandom(32)
    sealed = repo.key.encrypt(encode_index({pack: [PackedBlob(BlobType.DATA, bomb_id, 0, 100 << 40, 0)]}))
    bad_index = hashlib.sha256(sealed).hexdigest()
    repo.backend.save(Handle(FileType.INDEX, bad_index), sealed)
    _snapshot_of(repo, {b"bomb": (bomb_id, 100 << 40), b"good": good})
    repo.close()
    target = tmp_path / "target"
    restored = run_capped(cli, "restore", "latest", "--target", str(target))
    assert_clean(restored)
    assert restored.returncode == 14
    assert "bomb: blob " in restored.stderr and "is not in the index" in restored.stderr
    assert restored.stderr.strip().splitlines()[-1] == "amber: 1 file(s) could not be restored intact"
    assert (target / "good").read_bytes() == b"good content\n" * 100
    reopened = _open(cli)
    assert reopened.index_errors == [bad_index]  # refused at index load, the others kept
    with pytest.raises(ObjectTooLarge, match="claims 109951162777600 bytes"):
        decode_index(reopened.key.decrypt(sealed))
    reopened.close()


# -- native libraries ------------------------------------------------------------------------


def test_a_ciphertext_too_long_for_the_aead_is_refused_before_the_call() -> None:
    import mmap

    key = MasterKey.generate()
    # untouched pages: no memory is used
    with mmap.mmap(-1, 2**31 + 64) as huge, pytest.raises(IntegrityError, match="too long"):
        key.decrypt(memoryview(huge))


def test_a_native_panic_becomes_an_integrity_error() -> None:
    """cryptography panics in Rust (a BaseException) on input of 2 GiB or more."""
    import mmap

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    with mmap.mmap(-1, 2**31 + 64) as huge:
        try:
            AESGCM(bytes(32)).decrypt(bytes(12), memoryview(huge), None)
        except BaseException as exc:  # the point: what escapes Exception
            panic = exc
        else:
            pytest.skip("this cryptography version raises no panic here")
    assert is_native_panic(panic) and not isinstance(panic, Exception)
    converted = native_error(panic, "decryption")
    assert isinstance(converted, IntegrityError)
    assert native_error(KeyboardInterrupt(), "x").__class__ is KeyboardInterrupt
