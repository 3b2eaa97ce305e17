"""Against a real external S3 endpoint (e.g. MinIO), when the environment names one.

    AMBER_TEST_S3_ENDPOINT=http://127.0.0.1:9000 AMBER_TEST_S3_BUCKET=amber-test \\
    AMBER_TEST_S3_ACCESS_KEY=... AMBER_TEST_S3_SECRET_KEY=... pytest tests/storage/test_s3_external.py

Optional: AMBER_TEST_S3_BUCKET_LOOKUP (default path). Each run works under a fresh prefix
and removes what it wrote.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from amber.errors import ObjectNotFound
from amber.storage.base import FileInfo, FileType, Handle
from tests.conftest import AmberCli
from tests.storage.test_backends_cli import round_trip

ENV = (
    "AMBER_TEST_S3_ENDPOINT",
    "AMBER_TEST_S3_BUCKET",
    "AMBER_TEST_S3_ACCESS_KEY",
    "AMBER_TEST_S3_SECRET_KEY",
)
pytestmark = pytest.mark.skipif(
    not all(os.environ.get(k) for k in ENV), reason="no external S3 endpoint (AMBER_TEST_S3_* unset)"
)


@pytest.fixture
def external() -> Iterator[Any]:
    from amber.storage.s3 import S3Backend, S3Settings

    settings = S3Settings(
        access_key=os.environ["AMBER_TEST_S3_ACCESS_KEY"],
        secret_key=os.environ["AMBER_TEST_S3_SECRET_KEY"],
        bucket_lookup=os.environ.get("AMBER_TEST_S3_BUCKET_LOOKUP", "path"),
    )
    prefix = f"amber-test-{uuid.uuid4().hex[:12]}"
    backend = S3Backend(
        os.environ["AMBER_TEST_S3_ENDPOINT"], os.environ["AMBER_TEST_S3_BUCKET"], prefix, settings
    )
    backend.create()
    yield backend
    for t in FileType:
        for fi in list(backend.list(t)):
            backend.remove(Handle(t, fi.name))
    backend.close()


def test_objects_round_trip(external: Any) -> None:
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


def test_cli_init_backup_restore_check(tmp_path: Path) -> None:
    endpoint = os.environ["AMBER_TEST_S3_ENDPOINT"]
    url = f"s3:{endpoint}/{os.environ['AMBER_TEST_S3_BUCKET']}/amber-test-{uuid.uuid4().hex[:12]}"
    cli = AmberCli(Path(url), tmp_path)
    cli.env.update(
        AMBER_REPOSITORY=url,
        AWS_ACCESS_KEY_ID=os.environ["AMBER_TEST_S3_ACCESS_KEY"],
        AWS_SECRET_ACCESS_KEY=os.environ["AMBER_TEST_S3_SECRET_KEY"],
    )
    lookup = os.environ.get("AMBER_TEST_S3_BUCKET_LOOKUP", "path")
    round_trip(_WithOption(cli, ["-o", f"s3.bucket-lookup={lookup}"]), tmp_path)  # type: ignore[arg-type]


class _WithOption:
    """Prefixes every command with global options."""

    def __init__(self, cli: AmberCli, options: list[str]) -> None:
        self._cli, self._options = cli, options

    def run(self, *args: str, **kwargs: Any) -> Any:
        return self._cli.run(*self._options, *args, **kwargs)
