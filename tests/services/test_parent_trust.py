"""Another key holder cannot make this host's next backup reuse a planted parent.

The attacker writes a snapshot one second newer than the victim's, with the
victim's host name and paths and a file node whose metadata (size, mtime,
ctime, inode) matches the live file but whose content IDs point at its own
bytes. Only snapshots this host recorded as its own qualify as parents
(design §12), so the victim re-reads the file and its snapshot holds the real
bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from amber.repository import BlobType, Repository, Snapshot, Tree, open_repository
from amber.repository.model import format_time
from amber.services.own_snapshots import OwnSnapshots
from amber.storage import open_backend
from tests.cli.test_backup_cli import summary
from tests.conftest import PASSWORD, AmberCli

REAL = b"the real payroll numbers\n"
FAKE = b"the attacker's numbers!!\n"  # same length: the size matches too


def _replace_file(repo: Repository, tree_id: bytes, parts: list[bytes], content: list[bytes]) -> bytes:
    """A copy of the tree whose file at ``parts`` holds ``content`` (and FAKE's SHA-256)."""
    nodes = list(repo.load_tree(tree_id).nodes)
    for i, node in enumerate(nodes):
        if node.name != parts[0]:
            continue
        if len(parts) == 1:
            nodes[i] = msgspec.structs.replace(node, content=content, sha256=hashlib.sha256(FAKE).digest())
        else:
            sub = _replace_file(repo, node.subtree, parts[1:], content)
            nodes[i] = msgspec.structs.replace(node, subtree=sub)
    return repo.save_tree(Tree(nodes))[0]


def _plant_parent(repo_path: Path, target: Path) -> str:
    """What a hostile key holder on another machine does; returns the planted snapshot ID."""
    repo = open_repository(open_backend(str(repo_path)), PASSWORD.encode())
    try:
        with repo.lock():
            (sid, victim), *_ = sorted(repo.snapshots().items(), key=lambda kv: kv[1].datetime, reverse=True)
            fake_id = repo.key.blob_id(FAKE)
            repo.blobs.save(BlobType.DATA, FAKE, fake_id)
            parts = [os.fsencode(p) for p in target.parts[1:]]
            tree = _replace_file(repo, victim.tree, parts, [fake_id])
            repo.blobs.flush()
            planted = Snapshot(
                time=format_time(victim.datetime + dt.timedelta(seconds=1)), tree=tree, paths=victim.paths,
                hostname=victim.hostname, username=victim.username, parent=sid,
            )  # fmt: skip
            return repo.save_snapshot(planted)
    finally:
        repo.close()


def _backup(cli: AmberCli, src: Path, *args: str) -> dict[str, Any]:
    return summary(cli.run("backup", "--json", *args, str(src)))


def _written(tmp_path: Path, repo_path: Path) -> set[str]:
    repo = open_repository(open_backend(str(repo_path)), PASSWORD.encode(), load_index=False)
    repo_id = repo.id
    repo.close()
    path = tmp_path / "xdg-cache" / "amber" / repo_id / "written"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    return set(path.read_text().split())


def test_planted_parent_is_not_trusted(cli: AmberCli, tmp_path: Path, repo_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    target = src / "payroll.txt"
    target.write_bytes(REAL)
    first = _backup(cli, src)
    assert _written(tmp_path, repo_path) == {first["snapshot_id"]}
    planted = _plant_parent(repo_path, target)
    # the planted snapshot is "latest" and, left unchecked, would be the parent
    assert cli.run("dump", "latest", str(target)).stdout_bytes == FAKE
    cli.run("check", "--read-data")  # a well-formed plant: nothing for check to find

    time.sleep(1.1)  # the planted snapshot is 1 s newer than the first: the victim's next one is newer still
    second = _backup(cli, src)
    assert second["snapshot_id"] != planted
    assert cli.run("dump", second["snapshot_id"], str(target)).stdout_bytes == REAL
    assert cli.run("dump", "latest", str(target)).stdout_bytes == REAL
    assert _written(tmp_path, repo_path) == {first["snapshot_id"], second["snapshot_id"]}
    repo = open_repository(open_backend(str(repo_path)), PASSWORD.encode(), load_index=False)
    try:
        assert repo.load_snapshot(second["snapshot_id"]).parent == first["snapshot_id"]
    finally:
        repo.close()


def test_lost_record_reads_everything_once(cli: AmberCli, tmp_path: Path, repo_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(REAL)
    first = _backup(cli, src)
    cache = tmp_path / "xdg-cache" / "amber"
    for written in cache.glob("*/written"):
        written.unlink()
    second = _backup(cli, src)  # no trusted parent: a full read
    third = _backup(cli, src)  # the second run is now this host's own parent
    assert first["files_unmodified"] == 0 and second["files_unmodified"] == 0
    assert third["files_unmodified"] == 1


def test_explicit_parent_is_the_users_choice(cli: AmberCli, tmp_path: Path, repo_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(REAL)
    first = _backup(cli, src)
    for written in (tmp_path / "xdg-cache" / "amber").glob("*/written"):
        written.unlink()
    assert _backup(cli, src, "--parent", first["snapshot_id"][:8])["files_unmodified"] == 1


def test_own_snapshots_list_is_bounded_and_compacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr("amber.services.own_snapshots.COMPACT_AT", 200)
    own = OwnSnapshots("ab" * 16)
    ids = [f"{i:064x}" for i in range(10)]
    for sid in ids:
        assert own.record(sid, present=ids[5:])
    assert own.ids() <= set(ids) and ids[9] in own.ids()
    assert len(own.ids()) < 10  # the snapshots gone from the repository were dropped
    with open(own.path, "a") as f:
        f.write("not an id\n../../etc\n")
    assert all(len(i) == 64 for i in own.ids())


def test_unwritable_record_is_a_note_not_a_failure(cli: AmberCli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(REAL)
    not_a_dir = tmp_path / "cache-is-a-file"
    not_a_dir.write_text("")
    env = {"XDG_CACHE_HOME": str(not_a_dir)}
    out = cli.run("backup", str(src), env=env)
    assert "the next backup reads every file again" in out.stderr
    again = summary(cli.run("backup", "--json", str(src), env=env))
    assert again["files_unmodified"] == 0  # nothing recorded: nothing trusted


def test_a_list_others_could_write_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    own = OwnSnapshots("ab" * 16)
    assert own.record("cd" * 32)
    assert own.ids() == {"cd" * 32}
    os.chmod(own.path, 0o666)
    assert own.ids() == set()
    assert own.record("ef" * 32)  # the untrusted list is dropped, not tightened and believed
    assert own.ids() == {"ef" * 32}
