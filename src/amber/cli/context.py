"""State shared by every command: where the repository is and how to open it."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import click

from amber.cli.output import echo
from amber.errors import AmberError, IntegrityError, UsageError
from amber.ops.config.model import Config, default_config_path, load_config
from amber.ops.config.target import Target, load_optional, resolve
from amber.repository import Repository
from amber.services import session


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

    def config(self) -> Config:
        return load_config(self.config_path)

    @property
    def passwords_given(self) -> bool:
        """--password-file/--password-command (or their variables): they win over a configured source."""
        return bool(self.passwords.password_file or self.passwords.password_command)

    def target(self, job: str | None = None) -> Target:
        """-r as a location or a configured name; without -r the config's (``job``'s, the only job's)."""
        config, problem = load_optional(self.config_path)
        return resolve(self.repo, config, self.passwords, self.passwords_given, job, problem)

    @property
    def location(self) -> str:
        return self.target().location

    @contextmanager
    def open(
        self, lock: bool = True, exclusive: bool = False, load_index: bool = True
    ) -> Iterator[Repository]:
        t = self.target()
        opened = session.opened(t.location, t.passwords, lock, exclusive, t.options, load_index=load_index)
        with opened as repo:
            yield repo
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
            click.echo(f"note: {notice}", err=True)


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


pass_app = click.make_pass_decorator(AppContext)


def make_passwords(password_file: str | None, password_command: str | None) -> session.PasswordSource:
    return session.PasswordSource(password_file, password_command, _prompt)
