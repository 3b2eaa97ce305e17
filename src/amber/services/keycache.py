"""Opening a repository without argon2 on every call: the local key cache (design §12d).

Entries live in ``$XDG_CACHE_HOME/amber/keys/<SHA-256 of the location>`` (directory
0700, file 0600, owned by the calling user; anything else is ignored and replaced).
``AMBER_KEY_CACHE=off`` turns the cache off. What an entry holds and why a stolen
one is not the key itself: ``repository/keycache.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from amber.errors import RepositoryNotFound
from amber.repository import Repository, open_repository
from amber.repository.keycache import open_with_entry, seal_entry
from amber.services.context import OperationContext
from amber.services.own_snapshots import cache_root
from amber.services.session import PasswordSource
from amber.storage import open_backend
from amber.storage.url import BackendOptions

_MAX_ENTRY = 4096


def enabled() -> bool:
    return os.environ.get("AMBER_KEY_CACHE", "").strip().lower() not in ("0", "off", "no", "false")


def entry_path(location: str) -> str:
    return os.path.join(cache_root(), "keys", hashlib.sha256(location.encode()).hexdigest())


def _read(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o077:
            return None  # another user could have read or planted it
        return os.read(fd, _MAX_ENTRY)
    except OSError:
        return None
    finally:
        os.close(fd)


def write_private(path: str, data: bytes) -> None:
    """Atomically, 0600 in a 0700 directory; a cache that cannot be written is only slower."""
    folder = os.path.dirname(path)
    tmp = f"{path}.tmp-{secrets.token_hex(4)}"
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


@contextmanager
def opened_cached(
    location: str, passwords: PasswordSource, options: BackendOptions | None = None,
    ctx: OperationContext | None = None,
) -> Iterator[Repository]:  # fmt: skip
    """The repository without its index and without a lock, opened with the cached key when
    the entry fits, else with the password (argon2), refreshing the entry."""
    ctx = ctx or OperationContext()
    backend = open_backend(location, ctx.backend_options(options))
    ctx.opened(location)
    password = passwords.get()
    path = entry_path(backend.location)
    repo = None
    if enabled():
        raw = _read(path)
        if raw is not None:
            repo = open_with_entry(backend, raw, backend.location, password)
    if repo is None:
        if not backend.exists():
            raise RepositoryNotFound(f"no repository at {backend.location}")
        repo = open_repository(backend, password, load_index=False)
        if enabled():
            write_private(path, seal_entry(repo, backend.location, password))
    repo.cancel = ctx.cancel
    try:
        yield repo
    finally:
        repo.close()
