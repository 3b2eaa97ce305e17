"""Entry point: global options, command registration, error-to-exit-code mapping."""

from __future__ import annotations

import os
import sys
import traceback

import click

from amber import __version__
from amber.cli import cmd_audit
from amber.cli.backend_options import backend_option_flags
from amber.cli.context import AppContext, make_passwords
from amber.cli.lazy import LazyGroup, usage_line
from amber.cli.memory import tune_allocator
from amber.cli.output import echo, show_path
from amber.errors import EXIT_INTERRUPTED, AmberError, from_os_error
from amber.redact import redact


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-r", "--repo", envvar="AMBER_REPOSITORY",
              help="Repository location or a configured [repositories.NAME] (or AMBER_REPOSITORY).")
@click.option("--password-file", envvar="AMBER_PASSWORD_FILE", type=click.Path(dir_okay=False),
              help="Read the password from the first line of this file (or AMBER_PASSWORD_FILE).")
@click.option("--password-command", envvar="AMBER_PASSWORD_COMMAND",
              help="Run this command and use what it prints as the password (or AMBER_PASSWORD_COMMAND).")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.option("--config", "config_path", envvar="AMBER_CONFIG", type=click.Path(dir_okay=False),
              help="Config file (default: ~/.config/amber/config.toml).")
@backend_option_flags
@click.version_option(__version__, prog_name="amber")
@click.pass_context
def cli(
    ctx: click.Context, repo: str | None, password_file: str | None,
    password_command: str | None, debug: bool, config_path: str | None,
) -> None:  # fmt: skip
    """amber: deduplicating, encrypted, verifiable backups."""
    ctx.obj = AppContext(repo, make_passwords(password_file, password_command), debug, config_path)


def main(argv: list[str] | None = None) -> None:
    """Run one command, then append its audit record (command, arguments, exit code)."""
    args = list(argv if argv is not None else sys.argv[1:])
    try:
        _main(args)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        cause = exc.__context__
        error = cause.message if isinstance(cause, AmberError) else str(cause or "")
        cmd_audit.warn(cmd_audit.record_invocation(cli, args, code, error))
        raise


def _main(argv: list[str] | None = None) -> None:
    tune_allocator()
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="amber", standalone_mode=False)
    except click.exceptions.Abort:
        echo("amber: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        echo(f"amber: {usage_line(exc)}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        echo("amber: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except AmberError as exc:
        if debug:
            traceback.print_exc()
        echo(f"amber: {show_path(redact(exc.message))}", err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:
        if debug:
            traceback.print_exc()
        named = exc.filename if isinstance(exc.filename, str | bytes) else None
        err = from_os_error(exc, os.fsdecode(named) if named is not None else "file")
        echo(f"amber: {show_path(redact(err.message))}", err=True)
        sys.exit(err.exit_code)
    except Exception as exc:  # a bug: still one line unless --debug
        if debug:
            traceback.print_exc()
        detail = show_path(redact(str(exc)))
        echo(f"amber: internal error: {type(exc).__name__}: {detail} (rerun with --debug)", err=True)
        sys.exit(1)
    sys.exit(0)
