"""A backup after data loss re-uploads what is missing (issue 3 §5).

When a pack is lost and the index no longer lists its blobs (what
``repair index`` leaves behind), the next backup must not trust the parent
snapshot for files whose content is gone: it re-reads them, so the repository
heals and every snapshot that shared the data is whole again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import blake3

from amber.repository import open_repository
from amber.repository.index import encode_index
from amber.repository.pack import BlobType, pack_id
from amber.repository.sealing import Kind
from amber.storage import open_backend
from amber.storage.base import FileType, Handle
from tests.conftest import PASSWORD, AmberCli


def _manifest(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _backup(cli: AmberCli, src: Path) -> dict[str, object]:
    res = cli.run("backup", "--json", str(src))
    lines = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    summary: dict[str, object] = next(d for d in lines if d.get("message_type") == "summary")
    return summary


def _lose_pack_of(repo_path: Path, file_in_snapshot: bytes) -> str:
    """Delete the data pack holding ``file_in_snapshot``'s first blob, rebuild the index without it."""
    backend = open_backend(str(repo_path))
    repo = open_repository(backend, PASSWORD.encode())
    try:
        snap = repo.load_snapshot(repo.snapshot_names()[-1])
        tree = repo.load_tree(snap.tree)
        for part in file_in_snapshot.strip(b"/").split(b"/"):
            node = next(n for n in tree.nodes if n.name == part)
            if node.type == "dir":
                tree = repo.load_tree(node.subtree)
        lost = repo.blobs.locate(node.content[0]).pack
        backend.remove(Handle(FileType.PACK, lost))
        for fi in list(backend.list(FileType.INDEX)):
            backend.remove(Handle(FileType.INDEX, fi.name))
        packs = {}
        for fi in backend.list(FileType.PACK):
            _, blobs = repo.blobs.read_pack(fi.name)
            packs[fi.name] = blobs
        data = repo.sealer.seal(Kind.INDEX, encode_index(packs))
        backend.save(Handle(FileType.INDEX, pack_id(data)), data)
        return lost
    finally:
        repo.close()


def test_backup_after_lost_pack_reuploads_missing_data(cli: AmberCli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "big.bin").write_bytes(blake3.blake3(b"big").digest(length=3 << 20))
    (src / "sub" / "small.txt").write_bytes(b"small file\n" * 50)
    (src / "other.txt").write_bytes(b"kept in the index\n" * 20)
    expected = _manifest(src)
    first = _backup(cli, src)
    assert first["files_new"] == 3

    lost = _lose_pack_of(cli.repo, os.fsencode(src / "big.bin"))
    repo = open_repository(open_backend(str(cli.repo)), PASSWORD.encode())
    try:
        assert lost not in repo.blobs.index.packs()
        assert any(repo.blobs.index.blob_type(b) == BlobType.TREE for b, _ in repo.blobs.index.blobs())
    finally:
        repo.close()
    broken = cli.run("check", check=False)
    assert broken.returncode != 0  # the damage is real before the healing backup

    second = _backup(cli, src)
    # the three files are unchanged on disk, but their content was lost: read again
    assert second["files_unmodified"] == 0
    assert second["files_changed"] == 3
    assert second["data_blobs"] > 0

    cli.run("check", "--read-data")
    for snap in ("latest", str(first["snapshot_id"])):
        target = tmp_path / f"restore-{snap[:8]}"
        cli.run("restore", snap, "--target", str(target))
        assert _manifest(target / src.relative_to("/")) == expected

    third = _backup(cli, src)  # healed: nothing left to re-read
    assert third["files_unmodified"] == 3
    assert third["data_blobs"] == 0
