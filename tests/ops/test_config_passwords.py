"""Which password a configured repository opens with (docs/config.md: its own source first)."""

from __future__ import annotations

from pathlib import Path

import pytest

from amber.errors import UsageError
from amber.ops.config.repos import RepositoryConfig, config_passwords
from amber.services.session import PasswordSource


@pytest.mark.parametrize(
    ("own", "env", "expected"),
    [
        ({"password_env": "NAS_PW"}, {"NAS_PW": "nas", "AMBER_PASSWORD": "global"}, b"nas"),
        ({"password_env": "NAS_PW"}, {"AMBER_PASSWORD": "global"}, "NAS_PW is not set"),
        ({"password_command": "echo cmd"}, {"AMBER_PASSWORD": "global"}, b"cmd"),
        ({}, {"AMBER_PASSWORD": "global"}, b"global"),  # none of its own: the fallback
        ({}, {}, b"prompted"),
    ],
)
def test_own_password_source_wins_over_amber_password(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, own: dict[str, str], env: dict[str, str],
    expected: bytes | str,
) -> None:  # fmt: skip
    for var in ("NAS_PW", "AMBER_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    fallback = PasswordSource(prompt=lambda _new: "prompted")
    source = config_passwords(RepositoryConfig("nas", str(tmp_path), **own), fallback)
    if isinstance(expected, bytes):
        assert source.get() == expected
    else:
        with pytest.raises(UsageError, match=expected):
            source.get()
