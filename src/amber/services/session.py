"""Opening repositories and finding passwords: shared by every use case."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from amber.childenv import child_env, register_secret
from amber.errors import RepositoryNotFound, UsageError
from amber.repository import KdfParams, Repository, init_repository, open_repository
from amber.services.context import OperationContext
from amber.storage import open_backend
from amber.storage.readonly import ReadOnlyBackend
from amber.storage.url import BackendOptions

NO_PASSWORD = "no password: set AMBER_PASSWORD_FILE, AMBER_PASSWORD, --password-file or --password-command"


@dataclass
class PasswordSource:
    """Where the password comes from, in restic's order of precedence."""

    password_file: str | None = None
    password_command: str | None = None
    prompt: Callable[[bool], str] | None = None  # arg: True when asking for a new password
    password_env: str | None = None  # a configured repository's own variable: wins over AMBER_PASSWORD

    def __post_init__(self) -> None:
        if self.password_env:
            register_secret(self.password_env)

    def get(self, new: bool = False) -> bytes:
        if self.password_file:
            try:
                with open(self.password_file, "rb") as f:
                    return f.readline().rstrip(b"\r\n")
            except OSError as exc:
                raise UsageError(f"cannot read password file {self.password_file}: {exc.strerror}") from exc
        if self.password_command:
            proc = subprocess.run(
                self.password_command, shell=True, capture_output=True, check=False, env=child_env()
            )
            if proc.returncode != 0:
                raise UsageError(f"password command exited with status {proc.returncode}")
            return proc.stdout.rstrip(b"\r\n")
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value is None:
                raise UsageError(f"password variable {self.password_env} is not set")
            return os.fsencode(value)
        env = os.environ.get("AMBER_PASSWORD")
        if env is not None:
            return os.fsencode(env)
        if self.prompt is not None:
            return self.prompt(new).encode()
        raise UsageError(NO_PASSWORD)


def resolve_location(repo: str | None) -> str:
    location = repo or os.environ.get("AMBER_REPOSITORY", "")
    if not location:
        raise UsageError("no repository given: use -r/--repo or set AMBER_REPOSITORY")
    return location


def exists(location: str, options: BackendOptions | None = None) -> bool:
    return open_backend(location, options or BackendOptions()).exists()


def kdf_params() -> KdfParams | None:
    """Key-derivation cost for new keys from ``AMBER_KDF`` ("t=1,m=8192,p=1"), else the default.

    Lower costs make each guess cheaper for an attacker; this exists for slow devices
    and for test suites that open thousands of repositories.
    """
    spec = os.environ.get("AMBER_KDF", "").strip()
    if not spec:
        return None
    fields = {"t": "time_cost", "m": "memory_kib", "p": "parallelism"}
    values: dict[str, int] = {}
    for part in spec.split(","):
        key, sep, raw = part.strip().partition("=")
        if not sep or key not in fields or not raw.isdigit():
            raise UsageError(f"AMBER_KDF: expected t=N,m=KIB,p=N, got {spec!r}")
        values[fields[key]] = int(raw)
    params = KdfParams(**values)
    if params.time_cost < 1 or params.parallelism < 1 or params.memory_kib < 8 * params.parallelism:
        raise UsageError(f"AMBER_KDF: cost too low in {spec!r} (t>=1, p>=1, m>=8*p)")
    return params


def create(
    location: str, password: bytes, append_only: bool = False,
    ids_from: tuple[str, PasswordSource] | None = None, ctx: OperationContext | None = None,
    options: BackendOptions | None = None,
) -> Repository:  # fmt: skip
    """A new repository; ``ids_from`` (location, passwords): share that one's blob IDs and chunker.

    ``options`` shape the backend (a configured repository's own); None: the context's.
    """
    ctx = ctx or OperationContext()
    backend = open_backend(location, ctx.backend_options(options))
    ctx.opened(location)
    if ids_from is None:
        return init_repository(backend, password, kdf_params(), append_only=append_only)
    with opened(*ids_from, lock=False, ctx=ctx.child("")) as other:
        return init_repository(backend, password, kdf_params(), append_only=append_only, ids_from=other)


@contextmanager
def opened(
    location: str, passwords: PasswordSource, lock: bool = True, exclusive: bool = False,
    options: BackendOptions | None = None, *, ctx: OperationContext | None = None, read_only: bool = False,
    load_index: bool = True,
) -> Iterator[Repository]:  # fmt: skip
    """Open, lock (shared unless asked), and always release and close.

    ``options`` shape the backend (a configured repository's own); None: the context's.
    The repository carries the context's cancel signal (a lapsed lease stops the
    operation) and its event sink (services report progress to it). ``read_only``
    (lock-free readers only) refuses every write and delete.
    """
    ctx = ctx or OperationContext()
    if read_only and lock:
        raise ValueError("a read-only opening cannot take a lock")
    backend = open_backend(location, ctx.backend_options(options))
    if not backend.exists():
        raise RepositoryNotFound(f"no repository at {backend.location}")
    ctx.opened(location)
    backend = ReadOnlyBackend(backend) if read_only else backend
    repo = open_repository(backend, passwords.get(), load_index=load_index)
    repo.cancel = ctx.cancel
    repo.events = ctx.events  # services report progress to the operation's sink
    try:
        if lock:
            with repo.lock(exclusive=exclusive):
                yield repo
        else:
            yield repo
    finally:
        repo.close()
