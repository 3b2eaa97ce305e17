"""Against a real external S3 endpoint (e.g. MinIO), when the environment names one.

    AMBER_TEST_S3_ENDPOINT=http://127.0.0.1:9000 AMBER_TEST_S3_BUCKET=amber-test \\
    AMBER_TEST_S3_ACCESS_KEY=... AMBER_TEST_S3_SECRET_KEY=... pytest tests/storage/test_s3_external.py

Runs the whole storage conformance suite, a CLI init/backup/restore/check, and
Object Lock (locked objects refuse deletion; backup + ``object-lock extend``).
Optional: AMBER_TEST_S3_BUCKET_LOOKUP (default path); AMBER_TEST_S3_LOCK_BUCKET, a
bucket with Object Lock enabled (default: ``<bucket>-lock``, created if missing).
Each test works under a fresh prefix and removes what it wrote (locked objects
with governance bypass). Skipped when the variables are unset.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from amber.errors import ObjectNotFound, PermissionDenied
from amber.storage.base import Backend, FileInfo, FileType, Handle
from tests.conftest import AmberCli
from tests.storage.test_backends_cli import round_trip
from tests.storage.test_conformance import (
    backend,
    test_close_is_harmless,
    test_errors_are_amber_errors,
    test_exists_only_after_create_and_config,
    test_invalid_names_are_rejected,
    test_list_before_create_is_empty,
    test_list_config,
    test_list_names_and_sizes_per_type,
    test_load_range,
    test_missing_config_raises_object_not_found,
    test_missing_object_raises_object_not_found,
    test_overwrite_replaces_whole_content,
    test_readers_see_old_or_new_content_never_a_mix,
    test_remove,
    test_satisfies_protocol,
    test_save_accepts_bytearray_and_memoryview,
    test_save_leaves_no_visible_temporary_files,
    test_save_load_round_trip,
    test_stat_config,
)

CONFORMANCE = [
    backend, test_close_is_harmless, test_errors_are_amber_errors, test_exists_only_after_create_and_config,
    test_invalid_names_are_rejected, test_list_before_create_is_empty, test_list_config,
    test_list_names_and_sizes_per_type, test_load_range, test_missing_config_raises_object_not_found,
    test_missing_object_raises_object_not_found, test_overwrite_replaces_whole_content,
    test_readers_see_old_or_new_content_never_a_mix, test_remove, test_satisfies_protocol,
    test_save_accepts_bytearray_and_memoryview, test_save_leaves_no_visible_temporary_files,
    test_save_load_round_trip, test_stat_config,
]  # fmt: skip  (imported, so pytest collects the suite here against the external endpoint)

ENV = (
    "AMBER_TEST_S3_ENDPOINT",
    "AMBER_TEST_S3_BUCKET",
    "AMBER_TEST_S3_ACCESS_KEY",
    "AMBER_TEST_S3_SECRET_KEY",
)
pytestmark = pytest.mark.skipif(
    not all(os.environ.get(k) for k in ENV), reason="no external S3 endpoint (AMBER_TEST_S3_* unset)"
)


def _endpoint() -> str:
    return os.environ["AMBER_TEST_S3_ENDPOINT"]


def _lookup() -> str:
    return os.environ.get("AMBER_TEST_S3_BUCKET_LOOKUP", "path")


def _raw() -> Any:
    import boto3
    import botocore.config

    style = "virtual" if _lookup() == "dns" else _lookup()
    return boto3.client(
        "s3", endpoint_url=_endpoint(), aws_access_key_id=os.environ["AMBER_TEST_S3_ACCESS_KEY"],
        aws_secret_access_key=os.environ["AMBER_TEST_S3_SECRET_KEY"],
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        config=botocore.config.Config(s3={"addressing_style": style}),
    )  # fmt: skip


def _wipe(bucket: str, prefix: str) -> None:
    """Remove every version under ``prefix``, bypassing governance retention."""
    raw = _raw()
    for page in raw.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
            raw.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"],
                              BypassGovernanceRetention=True)  # fmt: skip
    raw.close()


def _backend(bucket: str, prefix: str, **settings: Any) -> Any:
    from amber.storage.s3 import S3Backend, S3Settings

    keys = S3Settings(
        access_key=os.environ["AMBER_TEST_S3_ACCESS_KEY"], secret_key=os.environ["AMBER_TEST_S3_SECRET_KEY"],
        bucket_lookup=_lookup(), **settings,
    )  # fmt: skip
    return S3Backend(_endpoint(), bucket, prefix, keys)


@pytest.fixture(params=["s3-external"])
def factory(request: pytest.FixtureRequest) -> Iterator[Callable[[], Backend]]:
    """The conformance suite's factory: one fresh prefix per test on the external bucket."""
    bucket, prefix = os.environ["AMBER_TEST_S3_BUCKET"], f"amber-test-{uuid.uuid4().hex[:12]}"
    made: list[Any] = []

    def make() -> Backend:
        made.append(_backend(bucket, prefix))
        return made[-1]  # type: ignore[no-any-return]

    yield make
    for b in made:
        b.close()
    _wipe(bucket, prefix)


@pytest.fixture(scope="module")
def lock_bucket() -> str:
    name = os.environ.get("AMBER_TEST_S3_LOCK_BUCKET") or f"{os.environ['AMBER_TEST_S3_BUCKET']}-lock"
    raw = _raw()
    try:
        state = raw.get_object_lock_configuration(Bucket=name)["ObjectLockConfiguration"]["ObjectLockEnabled"]
    except Exception:
        try:
            raw.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
        except Exception as exc:
            pytest.fail(f"no Object Lock bucket {name!r} and cannot create it ({exc}); "
                        "set AMBER_TEST_S3_LOCK_BUCKET to a bucket with Object Lock enabled")  # fmt: skip
        state = "Enabled"
    assert state == "Enabled", f"bucket {name} has no Object Lock"
    return name


def test_objects_round_trip(factory: Callable[[], Any]) -> None:
    external = factory()
    external.create()
    data = os.urandom(300_000)
    h = Handle(FileType.PACK, "ab" * 32)
    external.save(h, data)
    assert external.load(h) == data
    assert external.load(h, 1000, 500) == data[1000:1500]
    assert external.load(h, len(data) - 10, 100) == data[-10:]
    assert external.stat(h) == FileInfo(h.name, len(data))
    assert list(external.list(FileType.PACK)) == [FileInfo(h.name, len(data))]
    external.remove(h)
    with pytest.raises(ObjectNotFound):
        external.load(h)


def _cli(tmp_path: Path, bucket: str, prefix: str) -> tuple[AmberCli, str]:
    url = f"s3:{_endpoint()}/{bucket}/{prefix}"
    cli = AmberCli(Path(url), tmp_path)
    cli.env.update(
        AMBER_REPOSITORY=url,
        AWS_ACCESS_KEY_ID=os.environ["AMBER_TEST_S3_ACCESS_KEY"],
        AWS_SECRET_ACCESS_KEY=os.environ["AMBER_TEST_S3_SECRET_KEY"],
    )
    return cli, url


def test_cli_init_backup_restore_check(tmp_path: Path) -> None:
    bucket, prefix = os.environ["AMBER_TEST_S3_BUCKET"], f"amber-test-{uuid.uuid4().hex[:12]}"
    cli, _ = _cli(tmp_path, bucket, prefix)
    try:
        round_trip(_WithOption(cli, ["-o", f"s3.bucket-lookup={_lookup()}"]), tmp_path)  # type: ignore[arg-type]
    finally:
        _wipe(bucket, prefix)


def test_locked_object_refuses_deletion_until_its_date(lock_bucket: str) -> None:
    prefix = f"amber-test-{uuid.uuid4().hex[:12]}"
    locked = _backend(lock_bucket, prefix, lock_mode="GOVERNANCE", lock_days=1)
    try:
        h = Handle(FileType.PACK, "cd" * 32)
        locked.save(h, b"locked pack")
        until = locked.retention_until(h)
        assert until is not None and until > dt.datetime.now(dt.UTC) + dt.timedelta(hours=23)
        with pytest.raises(PermissionDenied, match="Object Lock"):
            locked.remove(h)
        assert locked.load(h) == b"locked pack"
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
        assert locked.extend_retention(h, later) is True
        got = locked.retention_until(h)
        assert got is not None and abs((got - later).total_seconds()) < 2
    finally:
        locked.close()
        _wipe(lock_bucket, prefix)


def test_cli_backup_locked_then_extended(lock_bucket: str, tmp_path: Path) -> None:
    prefix = f"amber-test-{uuid.uuid4().hex[:12]}"
    cli, _ = _cli(tmp_path, lock_bucket, prefix)
    opts = ["-o", f"s3.bucket-lookup={_lookup()}", "-o", "s3.lock-mode=governance", "-o", "s3.lock-days=1"]
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"f{i}").write_bytes(os.urandom(200_000))
    try:
        cli.run(*opts, "init")
        cli.run(*opts, "backup", str(src))
        raw = _raw()
        keys = [o["Key"] for o in raw.list_objects_v2(Bucket=lock_bucket, Prefix=prefix + "/")["Contents"]]
        assert any("/data/" in k for k in keys) and not any("/locks/" in k for k in keys)
        assert all(raw.head_object(Bucket=lock_bucket, Key=k)["ObjectLockMode"] == "GOVERNANCE" for k in keys)
        assert "referenced packs" in cli.run(*opts, "object-lock", "extend", "--days", "2").stdout
        soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=1, hours=20)
        for key in keys:
            assert raw.head_object(Bucket=lock_bucket, Key=key)["ObjectLockRetainUntilDate"] > soon, key
        cli.run(*opts, "restore", "latest", "--target", str(tmp_path / "out"), "--verify")
    finally:
        _wipe(lock_bucket, prefix)


class _WithOption:
    """Prefixes every command with global options."""

    def __init__(self, cli: AmberCli, options: list[str]) -> None:
        self._cli, self._options = cli, options

    def run(self, *args: str, **kwargs: Any) -> Any:
        return self._cli.run(*self._options, *args, **kwargs)
