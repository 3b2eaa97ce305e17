"""A lean start for ``wal-push`` and ``wal-get``, which PostgreSQL runs once per WAL file.

The full command line imports every layer (config, alerting, anomaly scoring ...) before
it parses anything: most of a push's wall-clock time. When a call needs none of that
(the repository is a path or URL from ``-r`` or ``AMBER_REPOSITORY``, the password a
file or a command, given as an option or its variable, and no other option), it runs here,
importing only the key cache and the WAL store; anything else goes to ``amber.cli.main``.
Errors are one line and exit codes are the same as there.
"""

from __future__ import annotations

import os
import sys

_COMMANDS = ("wal-push", "wal-get", "wal-fetch")
_GLOBAL = {"-r": "repo", "--repo": "repo", "--password-file": "password_file",
           "--password-command": "password_command"}  # fmt: skip


class LeanCall:
    """One lean call (a plain class: ``dataclasses`` alone costs ~10 ms of import on this path)."""

    __slots__ = ("args", "batch", "cluster", "command", "debug", "password_command", "password_file", "repo")

    def __init__(
        self, command: str, args: list[str], repo: str, password_file: str | None,
        password_command: str | None, cluster: str, debug: bool, batch: bool = False,
    ) -> None:  # fmt: skip
        self.command, self.args, self.repo = command, args, repo
        self.password_file, self.password_command = password_file, password_command
        self.cluster, self.debug, self.batch = cluster, debug, batch  # batch: wal-push --async

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LeanCall) and self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"LeanCall{self._fields()!r}"


def parse(argv: list[str]) -> LeanCall | None:
    """The call, when it can run without the config file; else None (the full CLI runs it)."""
    values: dict[str, str] = {}
    debug = False
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        word, eq, value = argv[i].partition("=")
        if word == "--debug" and not eq:
            debug, i = True, i + 1
            continue
        if word not in _GLOBAL:
            return None
        if not eq:
            if i + 1 >= len(argv):
                return None
            value, i = argv[i + 1], i + 1
        values[_GLOBAL[word]] = value
        i += 1
    rest = argv[i:]
    in_pg = rest[:1] == ["pg"]
    if in_pg:
        rest = rest[1:]
    if not rest or rest[0] not in _COMMANDS or (rest[0] == "wal-fetch" and not in_pg):
        return None
    command, cluster, positional = rest[0], os.environ.get("AMBER_PG_CLUSTER", "main"), []
    batch = False
    tail = rest[1:]
    j = 0
    while j < len(tail):
        word, eq, value = tail[j].partition("=")
        if word == "--cluster":
            if not eq:
                if j + 1 >= len(tail):
                    return None
                value, j = tail[j + 1], j + 1
            cluster = value
        elif word == "--async" and not eq and rest[0] == "wal-push":
            batch = True
        elif word.startswith("-"):
            return None  # --help, --job ...: the full command line knows them
        else:
            positional.append(tail[j])
        j += 1
    repo = values.get("repo") or os.environ.get("AMBER_REPOSITORY", "")
    command = "wal-get" if command == "wal-fetch" else command
    if len(positional) != (1 if command == "wal-push" else 2) or not _is_location(repo):
        return None
    if os.environ.get("AMBER_CONFIG") or os.environ.get("AMBER_PASSWORD_ENV"):
        return None
    password_file = values.get("password_file") or os.environ.get("AMBER_PASSWORD_FILE")
    password_command = values.get("password_command") or os.environ.get("AMBER_PASSWORD_COMMAND")
    if not (password_file or password_command):
        return None  # a configured repository's password could win over AMBER_PASSWORD: the config says
    return LeanCall(command, positional, repo, password_file, password_command, cluster, debug, batch)


def _is_location(repo: str) -> bool:
    """A path or URL, not the name of a configured repository."""
    return os.path.isabs(repo) or ":" in repo


def run(call: LeanCall) -> int:
    """Run the call; returns the exit code."""
    from amber.errors import AmberError, from_os_error

    try:
        from amber.services import walspool

        spool = None
        if call.command == "wal-push" and walspool.enabled(call.batch):
            spool = walspool.spool_dir(call.repo, call.cluster)
            if walspool.already_pushed(spool, call.args[0]):
                return 0  # an earlier call of the batch archived it: no key, no repository
        from amber.services import keycache, wal, walasync
        from amber.services.session import PasswordSource

        passwords = PasswordSource(call.password_file, call.password_command)
        with keycache.opened_cached(call.repo, passwords) as repo:
            if spool is not None:
                walasync.push_ready(repo, call.cluster, call.args[0], spool)
            elif call.command == "wal-push":
                wal.push(repo, call.cluster, call.args[0])
            else:
                wal.fetch(repo, call.cluster, call.args[0], call.args[1])
        return 0
    except AmberError as exc:
        return _fail(call, exc.message, exc.exit_code)
    except OSError as exc:
        err = from_os_error(
            exc, os.fsdecode(exc.filename) if isinstance(exc.filename, str | bytes) else "file"
        )
        return _fail(call, err.message, err.exit_code)
    except KeyboardInterrupt:
        return _fail(call, "interrupted", 130)


def _fail(call: LeanCall, message: str, code: int) -> int:
    from amber.redact import redact

    if call.debug:
        import traceback

        traceback.print_exc()
    sys.stderr.write(f"amber: {redact(message)}\n")
    return code


def main() -> None:
    """The ``amber`` program: the lean path when it applies, else the full command line."""
    call = parse(sys.argv[1:])
    if call is not None:
        sys.exit(run(call))
    from amber.cli.main import main as full

    full()
