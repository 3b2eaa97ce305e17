"""S3 Object Lock against moto's server: locked objects cannot be deleted before their date."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from amber.errors import PermissionDenied, UsageError
from amber.storage.base import FileType, Handle
from amber.storage.url import BackendOptions, open_backend, parse_extra_options, retention_layer
from tests.conftest import AmberCli
from tests.storage.servers import S3Server

PACK = Handle(FileType.PACK, "ab" * 32)


def _backend(server: S3Server, bucket: str, prefix: str, mode: str = "GOVERNANCE", days: int = 1) -> Any:
    from amber.storage.s3 import S3Backend

    return S3Backend(server.endpoint, bucket, prefix, server.settings(lock_mode=mode, lock_days=days))


@pytest.fixture(scope="module")
def lock_bucket(s3_server: S3Server) -> str:
    return s3_server.new_bucket(object_lock=True)


@pytest.mark.parametrize("mode", ["GOVERNANCE", "COMPLIANCE"])
def test_locked_pack_cannot_be_deleted_before_its_date(
    s3_server: S3Server, lock_bucket: str, tmp_path: Path, mode: str
) -> None:
    backend = _backend(s3_server, lock_bucket, tmp_path.name, mode)
    backend.save(PACK, b"pack bytes")
    until = backend.retention_until(PACK)
    assert until is not None
    assert dt.timedelta(hours=23) < until - dt.datetime.now(dt.UTC) <= dt.timedelta(days=1)
    with pytest.raises(PermissionDenied, match="Object Lock"):
        backend.remove(PACK)
    assert backend.load(PACK) == b"pack bytes"
    # nor with the client's own credentials behind amber's back: deleting the version is refused
    raw = s3_server.client()
    key = f"{tmp_path.name}/data/ab/{PACK.name}"
    version = raw.list_object_versions(Bucket=lock_bucket, Prefix=key)["Versions"][0]["VersionId"]
    with pytest.raises(Exception, match="AccessDenied"):
        raw.delete_object(Bucket=lock_bucket, Key=key, VersionId=version)
    assert backend.load(PACK) == b"pack bytes"


def test_lock_files_stay_removable(s3_server: S3Server, lock_bucket: str, tmp_path: Path) -> None:
    backend = _backend(s3_server, lock_bucket, tmp_path.name)
    lock = Handle(FileType.LOCK, "cd" * 32)
    backend.save(lock, b"lock")
    assert backend.retention_until(lock) is None
    backend.remove(lock)
    assert list(backend.list(FileType.LOCK)) == []


def test_unlocked_objects_on_a_lock_bucket_are_really_removed(
    s3_server: S3Server, lock_bucket: str, tmp_path: Path
) -> None:
    from amber.storage.s3 import S3Backend

    backend = S3Backend(s3_server.endpoint, lock_bucket, tmp_path.name, s3_server.settings())
    backend.save(PACK, b"no retention")
    backend.remove(PACK)
    key = f"{tmp_path.name}/data/ab/{PACK.name}"
    versions = s3_server.client().list_object_versions(Bucket=lock_bucket, Prefix=key)
    assert not versions.get("Versions") and not versions.get("DeleteMarkers")


def test_extend_retention_only_moves_later(s3_server: S3Server, lock_bucket: str, tmp_path: Path) -> None:
    backend = _backend(s3_server, lock_bucket, tmp_path.name)
    backend.save(PACK, b"x")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=10)
    assert backend.extend_retention(PACK, later) is True
    until = backend.retention_until(PACK)
    assert until is not None and abs((until - later).total_seconds()) < 2
    assert backend.extend_retention(PACK, later - dt.timedelta(days=5)) is False
    assert backend.retention_until(PACK) == until


def test_retention_capability_is_found_under_the_wrappers(s3_server: S3Server, lock_bucket: str) -> None:
    extra = parse_extra_options(["s3.lock-mode=governance", "s3.lock-days=3", "connections=2"])
    wrapped = open_backend(f"s3:{s3_server.endpoint}/{lock_bucket}/x", BackendOptions(extra=extra))
    layer = retention_layer(wrapped)
    assert layer is not None and layer.retention_days() == 3
    assert retention_layer(open_backend("/tmp/nowhere")) is None
    with pytest.raises(UsageError, match="both"):
        parse_and_open = parse_extra_options(["s3.lock-mode=governance"])
        open_backend(f"s3:{s3_server.endpoint}/{lock_bucket}/x", BackendOptions(extra=parse_and_open))


def test_cli_backup_is_locked_and_extend_covers_referenced_packs(
    s3_server: S3Server, lock_bucket: str, tmp_path: Path
) -> None:
    url = f"s3:{s3_server.endpoint}/{lock_bucket}/{tmp_path.name}"
    cli = AmberCli(Path(url), tmp_path)
    cli.env.update(s3_server.env(), AMBER_REPOSITORY=url)
    lock = ["-o", "s3.lock-mode=governance", "-o", "s3.lock-days=1"]
    src = tmp_path / "src"
    src.mkdir()
    for i in range(5):
        (src / f"f{i}").write_bytes(bytes([i]) * 300_000)
    cli.run(*lock, "init")
    cli.run(*lock, "backup", str(src))
    raw = s3_server.client()
    keys = [o["Key"] for o in raw.list_objects_v2(Bucket=lock_bucket, Prefix=tmp_path.name)["Contents"]]
    packs = [k for k in keys if "/data/" in k]
    assert packs and not [k for k in keys if "/locks/" in k]  # the backup's lock is gone
    for key in keys:
        assert raw.head_object(Bucket=lock_bucket, Key=key)["ObjectLockMode"] == "GOVERNANCE"
    out = cli.run(*lock, "object-lock", "extend", "--days", "30").stdout
    assert "referenced packs" in out
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=29)
    short = [
        k for k in keys if raw.head_object(Bucket=lock_bucket, Key=k)["ObjectLockRetainUntilDate"] <= soon
    ]
    assert short == []
    no_lock = cli.run("object-lock", "extend", check=False)
    assert no_lock.returncode == 2 and "Object Lock" in no_lock.stderr
