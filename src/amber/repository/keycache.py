"""A local cache of a repository's master key, for commands run once per WAL file (design §12d).

argon2id costs about 0.1 s and 32 MiB per opening on purpose; PostgreSQL runs
``archive_command`` once per 16 MiB segment, so ``wal-push`` opens with a cached
key instead. The entry (JSON) holds the master key sealed (AES-256-GCM) under
``BLAKE3-derive("amber key cache v1", salt ‖ password)``, bound to the location:
without the password the file gives nothing away but the repository ID. The
password is hashed fast, so someone who can read the file (this user, or root) can
test guesses quickly: a repository that receives WAL wants a long random password.

Opening with a cached key still authenticates ``config`` with it and checks that
the key file it came from still exists, so a removed key stops working here too.
"""

from __future__ import annotations

import base64
import json
import os

import blake3
import msgspec

from amber.errors import IntegrityError, ObjectNotFound, RepositoryNotFound
from amber.repository.crypto import MasterKey
from amber.repository.limits import OBJECT_LIMITS
from amber.repository.repo import Repository, open_config
from amber.storage.appendonly import AppendOnlyBackend
from amber.storage.base import Backend, FileType, Handle

_CONTEXT = "amber key cache v1"
_VERSION = 1


def _wrapping(password: bytes, salt: bytes) -> MasterKey:
    k = blake3.blake3(salt + password, derive_key_context=_CONTEXT).digest()
    return MasterKey(k, k)  # only its AEAD is used


def _ad(location: str) -> bytes:
    return b"amber key cache\0" + location.encode()


def seal_entry(repo: Repository, location: str, password: bytes) -> bytes:
    """The cache entry for ``repo``, opened with ``password`` at ``location``."""
    salt = os.urandom(16)
    secret = repo.key.encrypt_key + repo.key.id_key
    sealed = _wrapping(password, salt).encrypt(secret, _ad(location))
    entry = {"version": _VERSION, "repository": repo.id, "key": repo.key_name,
             "append_only": repo.append_only, "salt": base64.b64encode(salt).decode(),
             "sealed": base64.b64encode(sealed).decode()}  # fmt: skip
    return json.dumps(entry).encode()


def open_with_entry(backend: Backend, raw: bytes, location: str, password: bytes) -> Repository | None:
    """The repository opened with a cache entry, or None when the entry does not fit
    (another password, another repository at this location, a removed key, damage)."""
    try:
        entry = json.loads(raw)
        if entry.get("version") != _VERSION:
            return None
        salt = base64.b64decode(entry["salt"], validate=True)
        sealed = base64.b64decode(entry["sealed"], validate=True)
        secret = _wrapping(password, salt).decrypt(sealed, _ad(location))
        key_name, repo_id, append_only = (
            str(entry["key"]),
            str(entry["repository"]),
            bool(entry["append_only"]),
        )
    except (ValueError, KeyError, TypeError, IntegrityError):
        return None
    if len(secret) != 64:
        return None
    key = MasterKey(secret[:32], secret[32:])
    try:
        backend.stat(Handle(FileType.KEY, key_name))
        config = open_config(key, backend.load(Handle(FileType.CONFIG), limit=OBJECT_LIMITS[FileType.CONFIG]))
    except ObjectNotFound as exc:
        if not backend.exists():
            raise RepositoryNotFound(f"no repository at {backend.location}") from exc
        return None
    except (IntegrityError, msgspec.DecodeError):
        return None
    if config.id != repo_id:
        return None
    if config.append_only or append_only:
        backend = AppendOnlyBackend(backend)
    return Repository(backend, key, config, key_name)
