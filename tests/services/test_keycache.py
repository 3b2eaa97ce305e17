"""The local key cache that spares wal-push an argon2 run per WAL file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from amber.errors import WrongPassword
from amber.repository import init_repository
from amber.services import keycache
from amber.services.session import PasswordSource
from amber.storage import open_backend
from tests.conftest import PASSWORD


@pytest.fixture
def location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = str(tmp_path / "repo")
    init_repository(open_backend(path), PASSWORD.encode()).close()
    return path


def opens(location: str, password: str) -> str:
    with keycache.opened_cached(location, _source(password)) as repo:
        return repo.key_name


def _source(password: str) -> PasswordSource:
    return PasswordSource(password_command=f"printf %s '{password}'")


def test_the_entry_is_private_and_used(location: str, monkeypatch: pytest.MonkeyPatch) -> None:
    key_name = opens(location, PASSWORD)
    entry = Path(keycache.entry_path(location))
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert stat.S_IMODE(entry.parent.stat().st_mode) == 0o700
    assert PASSWORD.encode() not in entry.read_bytes()

    def no_argon2(*args: object, **kwargs: object) -> object:
        raise AssertionError("the cached key should have been used")

    monkeypatch.setattr(keycache, "open_repository", no_argon2)
    assert opens(location, PASSWORD) == key_name


def test_the_wrong_password_never_opens_through_the_cache(location: str) -> None:
    opens(location, PASSWORD)
    with pytest.raises(WrongPassword):
        opens(location, "wrong")


def test_a_removed_key_invalidates_the_entry(location: str) -> None:
    first = opens(location, PASSWORD)
    with keycache.opened_cached(location, _source(PASSWORD)) as repo:
        repo.change_password(b"new password")  # adds a key, removes the one the entry names
    with pytest.raises(WrongPassword):
        opens(location, PASSWORD)
    assert opens(location, "new password") != first


def test_an_entry_others_could_write_is_ignored(location: str, monkeypatch: pytest.MonkeyPatch) -> None:
    opens(location, PASSWORD)
    entry = Path(keycache.entry_path(location))
    entry.chmod(0o644)
    calls: list[str] = []
    real = keycache.open_repository

    def counting(*args: object, **kwargs: object) -> object:
        calls.append("argon2")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(keycache, "open_repository", counting)
    opens(location, PASSWORD)
    assert calls == ["argon2"]
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600  # rewritten privately
