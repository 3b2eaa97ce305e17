"""Object Lock retention calls go through the wrapper stack: retried, bounded, faulted (moto server)."""
# ruff: noqa: E501  (long test setup lines read best whole)

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from amber.errors import TransientStorageError
from amber.storage.base import FileType, Handle
from amber.storage.concurrency import ConcurrencyLimitedBackend
from amber.storage.faults import FaultInjectingBackend, FaultPlan
from amber.storage.retention import WrappedRetention, retention_of
from amber.storage.retry import RetryingBackend, RetryPolicy
from amber.storage.url import BackendOptions, open_backend, parse_extra_options
from tests.conftest import AmberCli
from tests.storage.servers import S3Server

HANDLES = [Handle(FileType.PACK, f"{i:02x}" * 32) for i in range(12)]


@pytest.fixture(scope="module")
def lock_bucket(s3_server: S3Server) -> str:
    return s3_server.new_bucket(object_lock=True)


def _s3(server: S3Server, bucket: str, prefix: str) -> object:
    from amber.storage.s3 import S3Backend

    return S3Backend(server.endpoint, bucket, prefix, server.settings(lock_mode="GOVERNANCE", lock_days=1))


def test_capability_is_wrapped_not_dug_out(s3_server: S3Server, lock_bucket: str) -> None:
    extra = parse_extra_options(["s3.lock-mode=governance", "s3.lock-days=2", "connections=2"])
    wrapped = open_backend(f"s3:{s3_server.endpoint}/{lock_bucket}/w", BackendOptions(extra=extra))
    layer = retention_of(wrapped)
    assert isinstance(layer, WrappedRetention)  # the concurrency layer's view ...
    assert isinstance(layer.inner, WrappedRetention)  # ... of the retry layer's view of S3
    assert layer.retention_days() == 2
    assert retention_of(open_backend("/tmp/nowhere-amber")) is None


def test_extend_is_retried_through_injected_faults(s3_server: S3Server, lock_bucket: str, tmp_path: Path) -> None:
    s3 = _s3(s3_server, lock_bucket, tmp_path.name)
    for h in HANDLES:
        s3.save(h, b"pack")  # type: ignore[attr-defined]
    faulty = FaultInjectingBackend(s3, FaultPlan(0.4, seed=7, kinds=("error", "timeout")), sleep=lambda _s: None)  # type: ignore[arg-type]
    retrying = RetryingBackend(faulty, RetryPolicy(attempts=20, base_delay=0.001), seed=1)
    stack = ConcurrencyLimitedBackend(retrying, 2)
    layer = retention_of(stack)
    assert layer is not None
    until = dt.datetime.now(dt.UTC) + dt.timedelta(days=9)
    for h in HANDLES:
        layer.extend_retention(h, until)
    assert faulty.injected["error"] + faulty.injected["timeout"] > 0 and retrying.retries > 0
    for h in HANDLES:
        got = s3.retention_until(h)  # type: ignore[attr-defined]
        assert got is not None and abs((got - until).total_seconds()) < 2


def test_without_retry_the_same_faults_fail(s3_server: S3Server, lock_bucket: str, tmp_path: Path) -> None:
    s3 = _s3(s3_server, lock_bucket, tmp_path.name)
    for h in HANDLES:
        s3.save(h, b"pack")  # type: ignore[attr-defined]
    faulty = FaultInjectingBackend(s3, FaultPlan(0.4, seed=7, kinds=("error",)), sleep=lambda _s: None)  # type: ignore[arg-type]
    layer = retention_of(faulty)
    assert layer is not None
    until = dt.datetime.now(dt.UTC) + dt.timedelta(days=9)
    with pytest.raises(TransientStorageError, match="injected"):
        for h in HANDLES:
            layer.extend_retention(h, until)


def test_cli_object_lock_extend_succeeds_at_a_fault_rate(s3_server: S3Server, lock_bucket: str, tmp_path: Path) -> None:
    url = f"s3:{s3_server.endpoint}/{lock_bucket}/{tmp_path.name}"
    cli = AmberCli(Path(url), tmp_path)
    cli.env.update(s3_server.env(), AMBER_REPOSITORY=url)
    lock = ["-o", "s3.lock-mode=governance", "-o", "s3.lock-days=1", "-o", "retry-delay=0.01", "-o", "retries=15"]
    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        (src / f"f{i}").write_bytes(bytes([i + 1]) * 200_000)
    cli.run(*lock, "init")
    cli.run(*lock, "backup", str(src))
    faults = {"AMBER_FAULT_RATE": "0.15", "AMBER_FAULT_SEED": "3", "AMBER_FAULT_KINDS": "error,timeout"}
    raw = s3_server.client()
    keys = [o["Key"] for o in raw.list_objects_v2(Bucket=lock_bucket, Prefix=tmp_path.name)["Contents"]]
    out = cli.run(*lock, "object-lock", "extend", "--days", "20", env=faults).stdout
    assert "referenced packs" in out
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=19)
    assert keys and all(raw.head_object(Bucket=lock_bucket, Key=k)["ObjectLockRetainUntilDate"] > soon for k in keys)
