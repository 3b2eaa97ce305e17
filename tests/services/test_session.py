"""Key-derivation cost chosen through AMBER_KDF."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from amber.errors import UsageError
from amber.repository import KdfParams
from amber.services import session
from amber.storage.base import FileType, Handle


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", None),
        ("t=1,m=8192,p=1", KdfParams(1, 8192, 1)),
        (" t=6 , p=4 , m=65536 ", KdfParams(6, 65536, 4)),
        ("m=16384", KdfParams(4, 16384, 2)),
    ],
)
def test_kdf_params_parse(monkeypatch: pytest.MonkeyPatch, spec: str, expected: KdfParams | None) -> None:
    monkeypatch.setenv("AMBER_KDF", spec)
    assert session.kdf_params() == expected


@pytest.mark.parametrize("spec", ["t=0,m=8192,p=1", "m=4,p=1", "x=1", "t=one", "t", "p=0"])
def test_kdf_params_refuse_bad_or_too_cheap(monkeypatch: pytest.MonkeyPatch, spec: str) -> None:
    monkeypatch.setenv("AMBER_KDF", spec)
    with pytest.raises(UsageError, match="AMBER_KDF"):
        session.kdf_params()


def _stored_params(path: Path) -> tuple[int, int, int]:
    repo = session.create(str(path), b"pw")
    try:
        (info,) = repo.list_keys()
        doc = json.loads(repo.backend.load(Handle(FileType.KEY, info.id)))
    finally:
        repo.close()
    p = doc["kdf_params"]
    return p["time_cost"], p["memory_kib"], p["parallelism"]


def test_new_repository_key_records_the_chosen_cost(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AMBER_KDF", "t=2,m=9000,p=1")
    assert _stored_params(tmp_path / "r") == (2, 9000, 1)


def test_default_cost_without_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AMBER_KDF", raising=False)
    default = KdfParams()
    assert _stored_params(tmp_path / "r") == (default.time_cost, default.memory_kib, default.parallelism)
