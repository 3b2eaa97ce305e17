"""Objects a key holder sealed with a value nested thousands of levels deep.

msgspec skips a map key a struct does not know by walking its value, and raises
RecursionError (not DecodeError) when that value nests deeper than Python's
recursion limit. A few KiB are enough. Every decoder of repository objects must
turn that into an IntegrityError, like any other malformed object.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from amber.errors import IntegrityError
from amber.repository import Repository, open_repository
from amber.repository.audit_store import load_segment
from amber.repository.index import decode_index
from amber.repository.model import Snapshot, decode_snapshot, decode_tree, format_time
from amber.repository.pack import BlobType
from amber.repository.rawtree import decode_node, decode_raw_tree
from amber.repository.repo import open_config
from amber.repository.run_records import load_record
from amber.repository.sealing import Kind, associated_data
from amber.storage import open_backend
from amber.storage.base import FileType, Handle
from tests.conftest import PASSWORD, AmberCli

DEEP = b"\x91" * 20_000 + b"\x90"  # [[[...[]...]]], 20 000 levels
UNKNOWN_KEY = b"\x81" + msgspec.msgpack.encode("unknown") + DEEP  # {"unknown": DEEP}
TREE = b"\x82" + msgspec.msgpack.encode("nodes") + b"\x90" + msgspec.msgpack.encode("unknown") + DEEP


def test_the_payload_is_what_msgspec_cannot_skip() -> None:
    with pytest.raises(RecursionError):
        msgspec.msgpack.decode(UNKNOWN_KEY, type=Snapshot)


@pytest.mark.parametrize("decode", [
    pytest.param(lambda: decode_tree(TREE), id="tree"),
    pytest.param(lambda: decode_raw_tree(TREE), id="raw-tree"),
    pytest.param(lambda: decode_node(UNKNOWN_KEY), id="node"),
    pytest.param(lambda: decode_snapshot(UNKNOWN_KEY), id="snapshot"),
    pytest.param(lambda: decode_index(UNKNOWN_KEY), id="index"),
])  # fmt: skip
def test_pure_decoders_raise_integrity_errors(decode: Callable[[], object]) -> None:
    with pytest.raises(IntegrityError):
        decode()


def _sealed(repo: Repository, kind: Kind, plain: bytes) -> tuple[str, bytes]:
    data = repo.sealer.seal(kind, plain)
    return hashlib.sha256(data).hexdigest(), data


def test_sealed_objects_raise_integrity_errors(repo: Repository) -> None:
    for kind, ftype, load in (
        (Kind.AUDIT, FileType.AUDIT, load_segment),
        (Kind.RUNS, FileType.RUNS, load_record),
    ):
        name, data = _sealed(repo, kind, UNKNOWN_KEY)
        repo.backend.save(Handle(ftype, name), data)
        with pytest.raises(IntegrityError):
            load(repo, name)
    config = repo.key.encrypt(UNKNOWN_KEY, associated_data(Kind.CONFIG))
    with pytest.raises(IntegrityError, match="malformed"):
        open_config(repo.key, config)


def _open(cli: AmberCli) -> Repository:
    return open_repository(open_backend(str(cli.repo)), PASSWORD.encode())


def test_a_deep_lock_file_is_reported_not_a_crash_of_every_locking_command(
    cli: AmberCli, tmp_path: Path
) -> None:
    repo = _open(cli)
    encrypt, _ = repo.lock_codec()
    data = encrypt(UNKNOWN_KEY)
    repo.backend.save(Handle(FileType.LOCK, hashlib.sha256(data).hexdigest()), data)
    unreadable: dict[str, str] = {}
    assert repo.lock_infos(unreadable) == {} and len(unreadable) == 1
    repo.close()
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_text("a")
    result = cli.run("backup", str(src), check=False)
    assert result.returncode == 0, result.stderr
    assert "internal error" not in result.stderr


def test_a_deep_tree_is_a_clear_error_for_ls_and_check(cli: AmberCli) -> None:
    repo = _open(cli)
    tree_id = repo.key.blob_id(TREE)
    repo.blobs.save(BlobType.TREE, TREE, tree_id)
    repo.blobs.flush()
    repo.save_snapshot(Snapshot(format_time(dt.datetime.now(dt.UTC)), tree_id, ["/"], "attacker"))
    repo.close()
    listed = cli.run("ls", "latest", check=False)
    assert listed.returncode == 14, listed.stderr
    assert "malformed" in listed.stderr and "internal error" not in listed.stderr
    checked = cli.run("check", check=False)
    assert checked.returncode != 0 and "internal error" not in checked.stderr, checked.stderr
