"""A config rewritten by a key holder. The repository ID names local files (catalog, WAL hints,
erasure journal, own snapshots):
a key holder who rewrites the config must not be able to point them anywhere else."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from amber.repository import open_repository
from amber.storage import open_backend
from tests.conftest import PASSWORD, AmberCli


@pytest.mark.parametrize("bad_id", ["../../../escaped", "{tmp}/escaped", "", "ABCDEF", "a" * 65])
def test_a_config_whose_id_is_not_hex_is_refused(cli: AmberCli, tmp_path: Path, bad_id: str) -> None:
    bad_id = bad_id.replace("{tmp}", str(tmp_path))  # an absolute path: os.path.join keeps only it
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    cli.run("backup", str(src))
    repo = open_repository(open_backend(str(cli.repo)), PASSWORD.encode())
    repo.save_config(msgspec.structs.replace(repo.config, id=bad_id))
    repo.close()
    found = cli.run("find", "f", check=False)  # the catalog lives under the cache, named by the ID
    assert found.returncode == 14, found.stderr
    assert "repository config is malformed" in found.stderr and "internal error" not in found.stderr
    # the cache is tmp_path/xdg-cache/amber: ../../.. is tmp_path's parent
    assert not (tmp_path / "escaped").exists() and not (tmp_path.parent / "escaped").exists()


@pytest.mark.parametrize("level", [23, 10**9, 2**40, -1])
def test_a_config_with_an_unusable_compression_level_is_refused(
    cli: AmberCli, tmp_path: Path, level: int
) -> None:
    repo = open_repository(open_backend(str(cli.repo)), PASSWORD.encode())
    repo.save_config(msgspec.structs.replace(repo.config, compression_level=level))
    repo.close()
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"compressible " * 1000)
    backed_up = cli.run("backup", str(src), check=False)
    assert backed_up.returncode == 14, backed_up.stderr
    assert "compression level" in backed_up.stderr and "internal error" not in backed_up.stderr
