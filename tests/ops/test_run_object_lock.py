"""`amber run` on an S3 repository (moto server) whose Object Lock is configured only in the TOML file."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from amber.events import RunEvent, Subscriber
from amber.ops.config.model import parse_config
from amber.ops.run import job as run_service
from amber.ops.run.steps import Repositories
from amber.ops.state import StateDB
from amber.services import session
from amber.storage.concurrency import ConcurrencyLimitedBackend
from amber.storage.ratelimit import RateLimitedBackend
from amber.storage.url import find_layer
from tests.conftest import PASSWORD, AmberCli
from tests.ops.test_run import observed
from tests.storage.servers import MOTO_KEYS, S3Server, s3_server

__all__ = ["s3_server"]


def write_config(tmp: Path, repo_url: str, options: str, retention: bool = True) -> Path:
    (tmp / "pass").write_text(PASSWORD + "\n")
    src = tmp / "src"
    src.mkdir(exist_ok=True)
    for i in range(4):
        (src / f"f{i}.bin").write_bytes(os.urandom(150_000))
    cfg = tmp / "config.toml"
    cfg.write_text(f"""
[repositories.cloud]
url = "{repo_url}"
password_file = "{tmp / 'pass'}"
kind = "cloud"
offsite = true
immutable = true
{options}

[retention.short]
keep_last = 5

[jobs.home]
paths = ["{src}"]
repository = "cloud"
{'retention = "short"' if retention else ''}

[state]
path = "{tmp / 'state' / 'state.db'}"
audit_log = "{tmp / 'state' / 'audit.log'}"
""")
    return cfg


LOCK = 'options = { "s3.lock-mode" = "governance", "s3.lock-days" = 2, "retry-delay" = 0.01 }'


def repo_keys(server: S3Server, bucket: str, prefix: str) -> list[str]:
    listed = server.client().list_objects_v2(Bucket=bucket, Prefix=prefix + "/")
    return [o["Key"] for o in listed.get("Contents", []) if "/locks/" not in o["Key"]]


def test_run_with_lock_only_in_the_config_leaves_everything_locked(
    s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = s3_server.new_bucket(object_lock=True)
    repo_url = f"s3:{s3_server.endpoint}/{bucket}/amber"
    cfg = write_config(tmp_path, repo_url, LOCK)
    cli = AmberCli(Path(repo_url), tmp_path)
    cli.env.update(s3_server.env(), AMBER_REPOSITORY=repo_url)
    cli.run("init")  # no -o: config and keys are written without retention
    raw = s3_server.client()
    unlocked = repo_keys(s3_server, bucket, "amber")
    assert unlocked and all("ObjectLockMode" not in raw.head_object(Bucket=bucket, Key=k) for k in unlocked)
    cli.run("--config", str(cfg), "run", "home")
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=1, hours=20)
    keys = repo_keys(s3_server, bucket, "amber")
    assert any("/data/" in k for k in keys) and any("/snapshots/" in k for k in keys)
    for key in keys:
        head = raw.head_object(Bucket=bucket, Key=key)
        assert head["ObjectLockMode"] == "GOVERNANCE", key
        assert head["ObjectLockRetainUntilDate"] > soon, key
    record = StateDB(str(tmp_path / "state" / "state.db")).runs("home")[0]
    assert record.status == "success"
    steps = {d.step: d for d in record.destinations}
    assert list(steps) == ["backup", "retention", "object-lock", "check"]  # extension after forget/prune
    lock_step = steps["object-lock"]
    assert lock_step.status == "success" and lock_step.name == "cloud"
    assert lock_step.details["extended"] >= len(unlocked) and lock_step.details["packs"] >= 1


class Recorder(Subscriber):
    def __init__(self) -> None:
        self.events: list[RunEvent] = []

    def run_event(self, event: RunEvent) -> None:
        self.events.append(event)


def test_failed_extension_is_recorded_and_alerts(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in MOTO_KEYS.items():
        monkeypatch.setenv(key, value)
    bucket = s3_server.new_bucket(object_lock=True)
    repo_url = f"s3:{s3_server.endpoint}/{bucket}/amber"
    cfg = parse_config(write_config(tmp_path, repo_url, LOCK, retention=False).read_text())
    cli = AmberCli(Path(repo_url), tmp_path)
    cli.env.update(s3_server.env(), AMBER_REPOSITORY=repo_url)
    cli.run("init")
    # An older snapshot of other data, whose pack is then lost: the run's backup cannot heal
    # it (a backup stores again only what it backs up), so extending what is in use fails.
    old = tmp_path / "old"
    old.mkdir()
    (old / "only-here.bin").write_bytes(os.urandom(50_000))
    cli.run("backup", str(old))  # unlocked, so a pack can be lost before the run
    raw = s3_server.client()
    lost = next(k for k in repo_keys(s3_server, bucket, "amber") if "/data/" in k)
    for v in raw.list_object_versions(Bucket=bucket, Prefix=lost)["Versions"]:
        raw.delete_object(Bucket=bucket, Key=lost, VersionId=v["VersionId"])
    recorder = Recorder()
    options = observed(recorder, check=False)
    [result] = run_service.run_jobs(cfg, ["home"], options)
    assert result.status == "failed" and result.record is not None
    steps = {d.step: d for d in result.record.destinations}
    assert steps["backup"].status == "success"
    assert steps["object-lock"].status == "failed" and "missing" in steps["object-lock"].message
    assert steps["object-lock"].details["error"] == "IntegrityError"
    kinds = [e.kind for e in recorder.events]
    assert "integrity" in kinds and kinds[-1] == "failure"
    # everything else was extended despite the missing pack (an unreferenced duplicate pack
    # that a concurrent save may leave behind is not, by design: prune removes it)
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=1, hours=20)
    keys = repo_keys(s3_server, bucket, "amber")
    until = {k: raw.head_object(Bucket=bucket, Key=k).get("ObjectLockRetainUntilDate") for k in keys}
    assert all(until[k] and until[k] > soon for k in keys if "/data/" not in k), until
    assert any(until[k] and until[k] > soon for k in keys if "/data/" in k), until


def test_repository_limits_and_options_reach_the_backend(tmp_path: Path) -> None:
    session.create(str(tmp_path / "usb"), PASSWORD.encode()).close()
    cfg = parse_config(f"""
[repositories.usb]
url = "{tmp_path / 'usb'}"
password_file = "{tmp_path / 'pass'}"
limit_upload = 300
options = {{ connections = 3 }}

[jobs.home]
paths = ["{tmp_path}"]
""")
    (tmp_path / "pass").write_text(PASSWORD + "\n")
    repos = Repositories(cfg, session.PasswordSource())
    assert repos.present("usb") and not repos.object_locked("usb")
    with repos.open("usb") as repo:
        layer: object = repo.backend
        while not isinstance(layer, RateLimitedBackend):
            layer = layer.inner  # type: ignore[attr-defined]
        assert layer.upload is not None and layer.upload.rate == 300 * 1024 and layer.download is None
        slots = find_layer(repo.backend, ConcurrencyLimitedBackend)
        assert slots is not None and slots.connections == 3
