"""Managing the keys (passwords) that open a repository."""

from __future__ import annotations

from amber.errors import UsageError
from amber.repository import Repository
from amber.repository.keys import KeyInfo
from amber.services.session import kdf_params


def add(repo: Repository, new_password: bytes, append_only: bool = False) -> str:
    """Add a key; an append-only key opens the repository for adding only."""
    if not new_password:
        raise UsageError("empty password refused")
    return repo.add_key(new_password, kdf_params(), append_only=append_only)


def list_keys(repo: Repository) -> list[tuple[KeyInfo, bool]]:
    """Every key, and whether it is the one in use."""
    return [(k, k.id == repo.key_name) for k in repo.list_keys()]


def remove(repo: Repository, key_id: str) -> None:
    repo.remove_key(key_id)


def passwd(repo: Repository, new_password: bytes) -> str:
    if not new_password:
        raise UsageError("empty password refused")
    return repo.change_password(new_password)
