"""State shared by every command: where the repository is, how to open it, and the operation context."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import update_wrapper
from typing import Any, TypeVar

import click

from amber.cli.output import echo
from amber.errors import AmberError, IntegrityError, UsageError
from amber.ops.config.model import Config, default_config_path, load_config
from amber.ops.config.target import Target, load_optional, resolve
from amber.repository import Repository
from amber.services import session
from amber.services.context import OperationContext

F = TypeVar("F", bound=Callable[..., Any])


def _prompt(new: bool) -> str:
    if not sys.stdin.isatty():
        raise UsageError(session.NO_PASSWORD)
    return str(
        click.prompt(
            "enter new password" if new else "enter password",
            hide_input=True,
            confirmation_prompt="confirm password" if new else False,
            err=True,
        )
    )


@dataclass
class AppContext:
    repo: str | None = None
    passwords: session.PasswordSource = field(default_factory=session.PasswordSource)
    debug: bool = False
    config_path: str | None = None  # --config; None = the default location
    operation: OperationContext = field(default_factory=OperationContext)  # this command's

    def config(self) -> Config:
        return load_config(self.config_path)

    @property
    def passwords_given(self) -> bool:
        """--password-file/--password-command (or their variables): they win over a configured source."""
        return bool(self.passwords.password_file or self.passwords.password_command)

    def target(self, job: str | None = None) -> Target:
        """-r as a location or a configured name; without -r the config's (``job``'s, the only job's)."""
        config, problem = load_optional(self.config_path)
        return resolve(self.repo, config, self.passwords, self.passwords_given, job, problem,
                       self.operation.options)  # fmt: skip

    @property
    def location(self) -> str:
        return self.target().location

    @contextmanager
    def open(
        self, lock: bool = True, exclusive: bool = False, read_only: bool = False, load_index: bool = True,
        job: str | None = None,
    ) -> Iterator[Repository]:  # fmt: skip
        """``read_only``: for lock-free readers; every write and delete is refused (storage/readonly.py).
        ``load_index=False``: the caller loads it only if it needs it (``Repository.ensure_index``).
        ``job``: that config job's repository when no -r is given."""
        t = self.target(job)
        with session.opened(t.location, t.passwords, lock, exclusive, t.options, ctx=self.operation,
                            read_only=read_only, load_index=load_index) as repo:  # fmt: skip
            yield repo
            if not read_only:
                _replicate_audit_log(repo, self.config_path)
                self._refresh_catalog(repo)

    def catalog_enabled(self) -> bool:
        """``[catalog] enabled`` from the config file when there is one (a broken config is
        reported by the commands that need it, not by every search)."""
        from amber.catalog import store

        path = self.config_path or default_config_path()
        configured = True
        if os.path.exists(path):
            with contextlib.suppress(AmberError):
                configured = self.config().catalog.enabled
        return store.enabled(configured)

    def _refresh_catalog(self, repo: Repository) -> None:
        """Fold snapshots this command added or removed into the local catalog, if there is one."""
        from amber import catalog

        notice = catalog.refresh(repo, self.catalog_enabled())
        if notice:
            echo(f"note: {notice}", err=True)


def _replicate_audit_log(repo: Repository, config_path: str | None) -> None:
    """Copy earlier audit records into the repository while it is open (the current command's
    own record is written after it ends, so it travels with the next one or `audit push`)."""
    from amber.ops.audit import log as audit

    try:
        audit.push(repo, audit.AuditLog(audit.resolve_path(config_path)), trust_cache=True)
    except IntegrityError as exc:  # a broken local chain must be seen; storage trouble can wait
        echo(f"warning: audit log not replicated: {exc.message}", err=True)
    except AmberError:
        pass


def pass_app(f: F) -> F:
    """Pass the AppContext first, and name the operation after the command path (``key add``)."""

    def new_func(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        app = ctx.find_object(AppContext)
        if app is None:
            raise RuntimeError("no AppContext")
        app.operation.record.command = " ".join(ctx.command_path.split()[1:])
        return ctx.invoke(f, app, *args, **kwargs)

    return update_wrapper(new_func, f)  # type: ignore[return-value]


def make_passwords(password_file: str | None, password_command: str | None) -> session.PasswordSource:
    return session.PasswordSource(password_file, password_command, _prompt)
