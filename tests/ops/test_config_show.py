"""config check's view of repositories: options, limits and password sources, secrets masked (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from amber.ops.config.repos import RepositoryConfig
from amber.ops.config.show import is_secret, mask_url, repository_lines, repository_summary


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "rest:https://me:hunter2@backup.example:8000/repo/",
            "rest:https://me:***@backup.example:8000/repo/",
        ),
        ("rest:http://:tok@127.0.0.1:8000/", "rest:http://:***@127.0.0.1:8000/"),
        ("rest:https://me@host/", "rest:https://me@host/"),  # no password, nothing to hide
        ("sftp://me@nas:2222//srv/amber", "sftp://me@nas:2222//srv/amber"),
        ("s3:https://s3.example.com/bucket/amber", "s3:https://s3.example.com/bucket/amber"),
        ("/media/usb/amber", "/media/usb/amber"),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("s3.secret-key", True), ("rest.Password", True), ("rclone.token", True), ("x.passwd", True),
        ("s3.credentials-file", True), ("s3.lock-days", False), ("sftp.accept-new-host-key", False),
        ("connections", False), ("rclone.args", False),
    ],
)  # fmt: skip
def test_is_secret(key: str, secret: bool) -> None:
    assert is_secret(key) is secret


@pytest.mark.parametrize(
    ("repo", "lines", "summary"),
    [
        (
            RepositoryConfig("usb", "/media/usb", password_file="/etc/amber/usb.pw"),
            ["  password: file /etc/amber/usb.pw"],
            {"options": {}, "limit_upload": 0, "limit_download": 0, "password": "file"},
        ),
        (
            RepositoryConfig(
                "cloud", "s3:https://h/b", password_command="echo hunter2",
                options={"s3.lock-mode": "governance", "s3.lock-days": "30", "s3.secret-key": "hunter2"},
                limit_upload=2048,
            ),
            ["  options: s3.lock-days=30, s3.lock-mode=governance, s3.secret-key=***",
             "  limits: upload 2048 KiB/s, download none", "  password: command"],
            {"options": {"s3.lock-days": "30", "s3.lock-mode": "governance", "s3.secret-key": "***"},
             "limit_upload": 2048, "limit_download": 0, "password": "command"},
        ),
        (
            RepositoryConfig("nas", "rest:http://u:pw@nas:8000/", password_env="NAS_PW", limit_download=512),
            ["  limits: upload none, download 512 KiB/s", "  password: env NAS_PW"],
            {"url": "rest:http://u:***@nas:8000/", "limit_download": 512, "password": "env"},
        ),
        (
            RepositoryConfig("plain", "/srv/amber"),
            ["  password: global (AMBER_PASSWORD, --password-file or --password-command)"],
            {"password": "global"},
        ),
    ],
)  # fmt: skip
def test_repository_lines_and_summary(
    repo: RepositoryConfig, lines: list[str], summary: dict[str, Any]
) -> None:
    assert repository_lines(repo) == lines
    full = repository_summary(repo)
    assert {k: full[k] for k in summary} == summary
    assert "hunter2" not in repr(full) and not any("hunter2" in line for line in lines)
