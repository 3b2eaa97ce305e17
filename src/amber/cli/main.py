"""Entry point: global options, command registration, signals, error-to-exit-code mapping."""

from __future__ import annotations

import os
import sys

import click

from amber import __version__
from amber.cli.backend_options import backend_option_flags, given_options
from amber.cli.context import AppContext, make_passwords
from amber.cli.lazy import LazyGroup, usage_line
from amber.cli.output import echo, err_console, plain, show_path
from amber.cli.signals import cancelling_on_signals
from amber.errors import EXIT_INTERRUPTED, AmberError, from_os_error, is_native_panic
from amber.events import Subscriber
from amber.memory import tune_allocator
from amber.ops.audit.observer import AuditObserver
from amber.redact import redact
from amber.services.context import OperationContext
from amber.services.operations import RUNNING

# Commands that only look at the log, the config or the local machine are not recorded.
NOT_AUDITED = frozenset({"audit show", "audit verify", "config check", "metrics", "notify test",
                         "schedule status", "alerts check",
                         # once per WAL segment: the archive itself is their record (design §12d)
                         "pg wal-push", "pg wal-get", "wal-push", "wal-get"})  # fmt: skip


class CliEvents(Subscriber):
    """The operation's notices on stderr: audit and subscriber trouble always, retries on --debug."""

    def __init__(self, debug: bool) -> None:
        self.debug = debug

    def notice(self, kind: str, message: str) -> None:
        if kind == "note":  # `amber run` and the daemon: each step's result, hooks
            err_console.print(plain(redact(message)), highlight=False)
        elif kind == "limits":
            err_console.print(plain(f"limits: {message}"), highlight=False)
        elif kind == "audit":
            err_console.print(f"[yellow]warning:[/] audit log not written: {plain(message)}", highlight=False)
        elif kind == "subscriber":
            err_console.print(f"[yellow]warning:[/] observer failed: {plain(message)}", highlight=False)
        elif self.debug or kind == "lease":
            err_console.print(f"note: {plain(message)}", highlight=False)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-r",
    "--repo",
    envvar="AMBER_REPOSITORY",
    help="Repository location or a configured [repositories.NAME] (or AMBER_REPOSITORY).",
)
@click.option(
    "--password-file",
    envvar="AMBER_PASSWORD_FILE",
    type=click.Path(dir_okay=False),
    help="Read the password from the first line of this file (or AMBER_PASSWORD_FILE).",
)
@click.option(
    "--password-command",
    envvar="AMBER_PASSWORD_COMMAND",
    help="Run this command and use what it prints as the password (or AMBER_PASSWORD_COMMAND).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.option(
    "--config",
    "config_path",
    envvar="AMBER_CONFIG",
    type=click.Path(dir_okay=False),
    help="Config file (default: ~/.config/amber/config.toml).",
)
@backend_option_flags
@click.version_option(__version__, prog_name="amber")
@click.pass_context
def cli(
    ctx: click.Context, repo: str | None, password_file: str | None,
    password_command: str | None, debug: bool, config_path: str | None,
) -> None:  # fmt: skip
    """amber: deduplicating, encrypted, verifiable backups."""
    operation = ctx.obj if isinstance(ctx.obj, OperationContext) else OperationContext()
    operation.options = given_options(ctx)
    operation.record.repository = repo or ""  # as given; an opened repository's location otherwise
    operation.observers.append(AuditObserver(config_path, NOT_AUDITED))
    ctx.obj = AppContext(repo, make_passwords(password_file, password_command), debug, config_path, operation)


def _print_traceback() -> None:
    import traceback  # only with --debug or on a crash: ~15 ms off every command's start

    traceback.print_exc()


def main(argv: list[str] | None = None) -> None:
    """Run one command as one operation; its observers (the audit log) hear how it ended."""
    args = list(argv if argv is not None else sys.argv[1:])
    operation = OperationContext()
    operation.events.subscribe(CliEvents("--debug" in args))
    operation.record.args = args
    if any(a in ("-h", "--help", "--version") for a in args):
        operation.record.command = "-"  # help is not an operation
    try:
        with cancelling_on_signals(operation.cancel), RUNNING.track(operation):
            _main(args, operation)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        cause = exc.__context__
        error = cause.message if isinstance(cause, AmberError) else str(cause or "")
        if operation.record.command != "-":
            operation.finish(code, error)
        raise


def _main(argv: list[str], operation: OperationContext) -> None:
    tune_allocator()
    debug = "--debug" in argv
    try:
        cli.main(args=argv, prog_name="amber", standalone_mode=False, obj=operation)
    except (click.exceptions.Abort, KeyboardInterrupt):
        reason = operation.cancel.reason  # a second signal: that signal's exit code
        echo(f"amber: {reason.message if reason else 'interrupted'}", err=True)
        sys.exit(reason.exit_code if reason else EXIT_INTERRUPTED)
    except click.ClickException as exc:
        echo(f"amber: {usage_line(exc)}", err=True)
        sys.exit(exc.exit_code)
    except AmberError as exc:
        if debug:
            _print_traceback()
        echo(f"amber: {show_path(redact(exc.message))}", err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:
        if debug:
            _print_traceback()
        named = exc.filename if isinstance(exc.filename, str | bytes) else None
        err = from_os_error(exc, os.fsdecode(named) if named is not None else "file")
        echo(f"amber: {show_path(redact(err.message))}", err=True)
        sys.exit(err.exit_code)
    except Exception as exc:  # a bug: still one line unless --debug
        if debug:
            _print_traceback()
        detail = show_path(redact(str(exc)))
        echo(f"amber: internal error: {type(exc).__name__}: {detail} (rerun with --debug)", err=True)
        sys.exit(1)
    except BaseException as exc:  # a native library's panic missed at its boundary: a bug too
        if not is_native_panic(exc):
            raise
        if debug:
            _print_traceback()
        click.echo(f"amber: internal error: native panic: {exc} (rerun with --debug)", err=True)
        sys.exit(1)
    sys.exit(0)
