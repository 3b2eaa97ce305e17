"""Format guard: every release reads the frozen version-1 repository and reports its damaged twin.

The fixture (tests/data/v1-repo.tar.gz, made by tests/data/make_v1_repo.py with
version-1 code) must open, pass ``check --read-data``, and restore byte for byte
to the SHA-256s in tests/data/v1-manifest.json. Its twin, with a flipped data
pack and a missing tree pack, must fail ``check`` with exit code 18 naming both.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from amber.repository import open_repository
from amber.storage import open_backend
from tests.conftest import AmberCli

DATA = Path(__file__).resolve().parent.parent / "data"
MANIFEST: dict[str, Any] = json.loads((DATA / "v1-manifest.json").read_text())
CHECK_FAILED = 18


def unpack_v1(dest: Path) -> Path:
    """Extract the frozen repositories; returns the directory holding ``repo`` and ``damaged``."""
    with tarfile.open(DATA / "v1-repo.tar.gz") as tar:
        tar.extractall(dest, filter="tar")
    return dest / "v1"


def v1_cli(tmp_path: Path, which: str = "repo") -> AmberCli:
    runner = AmberCli(unpack_v1(tmp_path) / which, tmp_path)
    runner.env["AMBER_PASSWORD"] = MANIFEST["password"]
    return runner


def restored_state(root: Path) -> dict[str, str]:
    """The manifest's description of a restored tree."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[rel] = "symlink:" + os.readlink(path)
        elif path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def assert_restores_as_recorded(cli: AmberCli, tmp_path: Path) -> None:
    for i, snap in enumerate(MANIFEST["snapshots"]):
        target = tmp_path / f"restore-{i}"
        cli.run("restore", snap["id"][:8], "--target", str(target))
        assert restored_state(target / snap["path"].lstrip("/")) == snap["files"]


def test_v1_repository_lists_its_snapshots(tmp_path: Path) -> None:
    cli = v1_cli(tmp_path)
    out = cli.run("snapshots", "--json").stdout
    assert sorted(s["id"] for s in json.loads(out)) == sorted(s["id"] for s in MANIFEST["snapshots"])


def test_v1_repository_checks_clean_with_read_data(tmp_path: Path) -> None:
    cli = v1_cli(tmp_path)
    result = cli.run("check", "--read-data")
    assert "no errors found" in result.stdout
    assert "warning" not in result.stderr
    repo = open_repository(open_backend(str(cli.repo)), MANIFEST["password"].encode())
    assert repo.config.version == 1  # reading never upgrades a repository
    repo.close()


def test_v1_repository_restores_byte_identically(tmp_path: Path) -> None:
    assert_restores_as_recorded(v1_cli(tmp_path), tmp_path)


def test_damaged_twin_is_reported(tmp_path: Path) -> None:
    result = v1_cli(tmp_path, "damaged").run("check", "--read-data", check=False)
    assert result.returncode == CHECK_FAILED, result.stderr
    damage = MANIFEST["damage"]
    assert damage["removed_pack"][:16] in result.stderr
    assert damage["flipped_pack"][:16] in result.stderr
    assert "damaged:" in result.stdout


@pytest.mark.parametrize(
    ("index", "exit_code", "message"),
    [(0, 14, "big.bin: damaged data"),  # IntegrityError: the flipped pack holds big.bin's chunks
     (1, 14, "does not exist")],  # the root tree's pack is gone: damage, exit 14
)
def test_damaged_twin_restore_fails_cleanly(tmp_path: Path, index: int, exit_code: int, message: str) -> None:
    cli = v1_cli(tmp_path, "damaged")
    snap = MANIFEST["snapshots"][index]
    result = cli.run("restore", snap["id"][:8], "--target", str(tmp_path / "t"), check=False)
    assert result.returncode == exit_code, result.stderr
    assert "Traceback" not in result.stderr
    assert message in result.stderr
