"""`amber repair index` and `amber repair snapshots` on real damage (lost files)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import blake3

from tests.conftest import AmberCli


def _manifest(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = Path(dirpath, name)
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _snapshot_ids(cli: AmberCli) -> list[str]:
    return sorted(os.listdir(cli.repo / "snapshots"))


def _backup(cli: AmberCli, src: Path) -> str:
    res = cli.run("backup", "--json", str(src))
    doc = next(json.loads(x) for x in res.stdout.splitlines() if '"summary"' in x)
    return str(doc["snapshot_id"])


def test_repair_index_after_losing_an_index_file(cli: AmberCli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(20):
        (src / f"f{i}").write_bytes(blake3.blake3(b"%d" % i).digest(length=50_000))
    snap = _backup(cli, src)
    indexes = sorted((cli.repo / "index").iterdir())
    assert indexes
    for f in indexes:
        f.unlink()
    assert cli.run("check", check=False).returncode == 18  # blobs missing from the index

    res = cli.run("repair", "index")
    assert "newly indexed" in res.stdout
    cli.run("check", "--read-data")
    target = tmp_path / "restored"
    cli.run("restore", snap, "--target", str(target))
    assert _manifest(target / src.relative_to("/")) == _manifest(src)
    assert not set(indexes) & set((cli.repo / "index").iterdir())


def test_repair_snapshots_after_losing_a_pack(cli: AmberCli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    big = blake3.blake3(b"big").digest(length=20 << 20)  # more than one 16 MiB pack
    (src / "big.bin").write_bytes(big)
    (src / "sub" / "small.txt").write_bytes(b"small\n" * 1000)
    snap = _backup(cli, src)
    packs = {p.name: p for p in (cli.repo / "data").glob("*/*")}
    largest = max(packs.values(), key=lambda p: p.stat().st_size)
    largest.unlink()  # the first 16 MiB of big.bin
    cli.run("repair", "index")
    assert cli.run("check", check=False).returncode == 18

    dry = cli.run("repair", "snapshots", "--dry-run")
    assert "big.bin" in dry.stdout and "would be rewritten" in dry.stdout
    assert _snapshot_ids(cli) == [snap]
    res = cli.run("repair", "snapshots", "--json")
    doc = json.loads(res.stdout)
    damaged = {os.path.basename(d["path"]) for d in doc["damaged"]}
    assert "big.bin" in damaged and damaged <= {"big.bin", "small.txt"}  # small.txt may share the pack
    (new,) = _snapshot_ids(cli)
    assert new != snap and doc["repaired"] == [{"old": snap, "new": new}]
    cli.run("check")  # the repaired snapshot references only data that exists

    target = tmp_path / "restored"
    res = cli.run("restore", new, "--target", str(target))
    assert "damaged" in res.stderr
    restored = target / src.relative_to("/")
    small = (restored / "sub" / "small.txt").read_bytes()
    assert small == (b"" if "small.txt" in damaged else b"small\n" * 1000)
    salvaged = (restored / "big.bin").read_bytes()
    assert 0 < len(salvaged) < len(big) and big.endswith(salvaged)

    _backup(cli, src)  # the next backup re-reads the damaged file: the repository heals
    cli.run("check", "--read-data")
    target = tmp_path / "healed"
    cli.run("restore", "latest", "--target", str(target))
    assert _manifest(target / src.relative_to("/")) == _manifest(src)
    assert not cli.run("repair", "snapshots").stdout.count("->")  # nothing left to repair
