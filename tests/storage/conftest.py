"""Server fixtures for the storage tests (see servers.py)."""

from __future__ import annotations

import pytest

from tests.storage.servers import S3Server, rest_server, s3_server, sshd_server

__all__ = ["rest_server", "s3_bucket", "s3_server", "sshd_server"]


@pytest.fixture(scope="session")
def s3_bucket(s3_server: S3Server) -> str:
    """One bucket for the session; each test uses its own prefix."""
    return s3_server.new_bucket()
