"""purge on an S3 repository under Object Lock (moto's server): refused with exit 38 and a date."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.conftest import AmberCli
from tests.storage.servers import S3Server, s3_server

__all__ = ["s3_server"]


@pytest.mark.slow
def test_purge_under_object_lock_is_refused_and_says_when_the_data_can_go(
    tmp_path: Path, s3_server: S3Server
) -> None:
    bucket = s3_server.new_bucket(object_lock=True)
    url = f"s3:{s3_server.endpoint}/{bucket}/amber"
    cli = AmberCli(Path(url), tmp_path)
    cli.env.update(s3_server.env(), AMBER_REPOSITORY=url)
    lock = ("-o", "s3.lock-mode=governance", "-o", "s3.lock-days=3", "-o", "retry-delay=0.01")
    cli.run(*lock, "init")
    src = tmp_path / "src"
    src.mkdir()
    (src / "secret.txt").write_bytes(b"private\n" * 1000)
    (src / "kept.txt").write_bytes(b"kept\n" * 1000)
    cli.run(*lock, "backup", str(src))
    res = cli.run(*lock, "purge", f"{src}/secret.txt", "--yes", check=False)
    assert res.returncode == 38, res.stderr
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).strftime("%Y-%m-%d")
    assert "Object Lock" in res.stderr and "3 days" in res.stderr and until in res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert "secret.txt" in cli.run(*lock, "ls", "latest", str(src)).stdout  # nothing was rewritten
    dry = cli.run(*lock, "purge", f"{src}/secret.txt", "--dry-run")  # looking is allowed
    assert "would purge 1 file" in dry.stdout
    assert "would be refused here: purge refused: Object Lock" in dry.stdout
