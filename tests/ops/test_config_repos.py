"""[repositories.NAME] options and limits: validated like -o, merged with the command line's."""
# ruff: noqa: E501  (the tables read best one case per line)

from __future__ import annotations

import re
from typing import Any

import pytest

from amber.errors import ConfigError
from amber.ops.config.model import parse_config
from amber.ops.config.repos import RepositoryConfig, backend_options
from amber.storage.url import BackendOptions

S3 = "s3:http://127.0.0.1:9000/bucket/amber"


def config(url: str, body: str) -> str:
    return f'[repositories.cloud]\nurl = "{url}"\npassword_env = "PW"\n{body}\n\n[jobs.home]\npaths = ["/home"]\n'


# (url, lines in the table) -> options, limit_upload, limit_download
GOOD: list[tuple[str, str, dict[str, str], int, int]] = [
    (S3, 'options = { "s3.lock-mode" = "governance", "s3.lock-days" = 30 }', {"s3.lock-mode": "governance", "s3.lock-days": "30"}, 0, 0),
    (S3, 'options = { "s3.lock-mode" = "COMPLIANCE", "s3.lock-days" = "7" }', {"s3.lock-mode": "COMPLIANCE", "s3.lock-days": "7"}, 0, 0),
    (S3, '[repositories.cloud.options]\n"s3.region" = "eu-central-1"\n"s3.bucket-lookup" = "path"\nconnections = 8', {"s3.region": "eu-central-1", "s3.bucket-lookup": "path", "connections": "8"}, 0, 0),
    ("sftp://nas//srv/amber", 'options = { "sftp.accept-new-host-key" = true, timeout = 30.5 }', {"sftp.accept-new-host-key": "true", "timeout": "30.5"}, 0, 0),
    ("/mnt/usb/amber", "limit_upload = 512\nlimit_download = 1024", {}, 512, 1024),
    ("/mnt/usb/amber", "options = { retries = 3, retry-delay = 0.1 }", {"retries": "3", "retry-delay": "0.1"}, 0, 0),
    ("/mnt/usb/amber", "", {}, 0, 0),
]


@pytest.mark.parametrize(("url", "body", "options", "up", "down"), GOOD)
def test_good_repository_tables(url: str, body: str, options: dict[str, str], up: int, down: int) -> None:
    repo = parse_config(config(url, body)).repositories["cloud"]
    assert (repo.options, repo.limit_upload, repo.limit_download) == (options, up, down)


# (url, lines in the table) -> expected "line: key path: problem"
BAD = [
    (S3, 'options = { "s3.lock-dayz" = 30 }', r':4: repositories\.cloud\.options\."s3\.lock-dayz": unknown backend option; known: .*s3\.lock-days'),
    ("/mnt/usb", 'options = { "s3.lock-mode" = "governance", "s3.lock-days" = 1 }', r':4: repositories\.cloud\.options\."s3\.lock-mode": does not apply to a local repository'),
    (S3, 'options = { "s3.lock-mode" = "governance" }', r':4: repositories\.cloud\.options\."s3\.lock-days": Object Lock needs both'),
    (S3, 'options = { "s3.lock-days" = 10 }', r':4: repositories\.cloud\.options\."s3\.lock-mode": Object Lock needs both'),
    (S3, 'options = { "s3.lock-mode" = "strict", "s3.lock-days" = 1 }', r':4: repositories\.cloud\.options\."s3\.lock-mode": must be governance or compliance'),
    (S3, 'options = { "s3.lock-mode" = "governance", "s3.lock-days" = -1 }', r':4: repositories\.cloud\.options\."s3\.lock-days": must not be negative'),
    (S3, 'options = { "s3.lock-mode" = "governance", "s3.lock-days" = 1.5 }', r':4: repositories\.cloud\.options\."s3\.lock-days": must be a whole number'),
    (S3, 'options = { "s3.bucket-lookup" = "virtual" }', r':4: repositories\.cloud\.options\."s3\.bucket-lookup": must be auto, path or dns'),
    ("/mnt/usb", 'options = { connections = "many" }', r":4: repositories\.cloud\.options\.connections: not a number: 'many'"),
    ("sftp://nas//srv", 'options = { "sftp.accept-new-host-key" = "maybe" }', r':4: repositories\.cloud\.options\."sftp\.accept-new-host-key": must be true or false'),
    ("/mnt/usb", 'options = { timeout = [1, 2] }', r":4: repositories\.cloud\.options\.timeout: expected a string, number or boolean"),
    ("/mnt/usb", 'options = "s3.lock-days=3"', r":4: repositories\.cloud\.options: expected a table, got a string"),
    ("/mnt/usb", "limit_upload = -5", r":4: repositories\.cloud\.limit_upload: must be at least 0"),
    ("/mnt/usb", 'limit_download = "fast"', r":4: repositories\.cloud\.limit_download: expected an integer"),
    ("s3:http://127.0.0.1:9000", "options = { timeout = 5 }", r":2: repositories\.cloud\.url: no bucket"),
]


@pytest.mark.parametrize(("url", "body", "expected"), BAD)
def test_bad_repository_tables_name_line_and_key(url: str, body: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(config(url, body), "config.toml")
    assert re.search("config.toml" + expected, info.value.message), info.value.message


# (repository's options and limits, command line) -> what the repository opens with
MERGE: list[tuple[dict[str, Any], BackendOptions, dict[str, str], float | None, float | None]] = [
    ({}, BackendOptions(), {}, None, None),
    ({"options": {"s3.lock-mode": "governance", "s3.lock-days": "30"}}, BackendOptions(), {"s3.lock-mode": "governance", "s3.lock-days": "30"}, None, None),
    ({"options": {"s3.lock-days": "30", "connections": "2"}}, BackendOptions(extra={"s3.lock-days": "60"}), {"s3.lock-days": "60", "connections": "2"}, None, None),
    ({"limit_upload": 100}, BackendOptions(), {}, 100.0, None),
    ({"limit_upload": 100}, BackendOptions(limit_upload_kib=50.0), {}, 50.0, None),
    ({"limit_upload": 100, "limit_download": 300}, BackendOptions(limit_upload_kib=500.0, limit_download_kib=200.0), {}, 100.0, 200.0),
    ({}, BackendOptions(limit_download_kib=64.0), {}, None, 64.0),
]


@pytest.mark.parametrize(("repo", "base", "extra", "up", "down"), MERGE)
def test_backend_options_merge(repo: dict[str, Any], base: BackendOptions, extra: dict[str, str], up: float | None, down: float | None) -> None:
    opts = backend_options(RepositoryConfig("r", S3, **repo), base)
    assert (dict(opts.extra), opts.limit_upload_kib, opts.limit_download_kib) == (extra, up, down)
