"""audit show|verify|push, and the hook that records every command in the audit log."""

from __future__ import annotations

import os
from collections.abc import Sequence

import click

from amber.cli.context import AppContext, pass_app
from amber.cli.output import echo, emit_json_text, err_console, plain
from amber.errors import AmberError, AuditLogBroken
from amber.ops.audit import log as audit_service
from amber.ops.audit.chain import parse_lines
from amber.ops.config.model import default_config_path

# Commands that only look at the log, the config or the local machine are not recorded.
_NOT_AUDITED = frozenset({"", "audit show", "audit verify", "config check", "metrics", "notify test",
                          "schedule status", "alerts check"})  # fmt: skip


def _log(app: AppContext) -> audit_service.AuditLog:
    return audit_service.AuditLog(audit_service.resolve_path(getattr(app, "config_path", None)))


@click.group()
def audit() -> None:
    """The hash-chained audit log of operations on backups."""


@audit.command("show")
@click.option("--json", "as_json", is_flag=True, help="One JSON record per line, as stored.")
@click.option("--last", type=click.IntRange(min=1), help="Only the last N records.")
@pass_app
def audit_show(app: AppContext, as_json: bool, last: int | None) -> None:
    """List the audit log."""
    log = _log(app)
    lines = log.lines()
    if last:
        lines = lines[-last:]
    if as_json:
        for line in lines:
            emit_json_text(line.decode("utf-8", "replace"))
        return
    for record in parse_lines(lines):
        if record is None:
            echo("?  (damaged record)")
            continue
        args = " ".join(str(a) for a in record.get("args", []))
        result = "ok" if record.get("exit_code") == 0 else f"exit {record.get('exit_code')}"
        error = f": {record['error']}" if record.get("error") else ""
        echo(f"{record.get('seq'):>6}  {str(record.get('time', ''))[:19]}  {record.get('user')}@"
                   f"{record.get('host')}  amber {args}  [{result}{error}]")  # fmt: skip


@audit.command("verify")
@click.option("--local", "local_only", is_flag=True, help="Do not compare with the repository copy.")
@pass_app
def audit_verify(app: AppContext, local_only: bool) -> None:
    """Check the hash chain, and compare it with the copy in the repository."""
    log = _log(app)
    verdict = log.verify()
    if not verdict.ok:
        raise AuditLogBroken(f"audit log {log.path} is broken at record {verdict.bad_seq}: {verdict.reason}")
    message = f"audit log {log.path}: {verdict.count} record(s), chain intact"
    if not local_only and (app.repo or os.environ.get("AMBER_REPOSITORY")):
        with app.open() as repo:
            replica = audit_service.verify_against(repo, log)
        if not replica.ok:
            raise AuditLogBroken(f"audit log {log.path} disagrees with repository at record "
                                 f"{replica.bad_seq}: {replica.reason}")  # fmt: skip
        message += f"; matches the repository copy ({replica.unreplicated} not yet replicated)"
    echo(message)


@audit.command("push")
@pass_app
def audit_push(app: AppContext) -> None:
    """Copy the records the repository does not hold yet into it."""
    log = _log(app)
    with app.open() as repo:
        count = audit_service.push(repo, log)
    echo(f"replicated {count} audit record(s)")


COMMANDS = [audit]


# -- the hook around every command ------------------------------------------------
def command_words(group: click.Group, args: Sequence[str]) -> str:
    """The (sub)command path of a command line, e.g. ``key add``; "" when there is none."""
    cmd: click.Command = group
    words: list[str] = []
    i = 0
    while i < len(args) and isinstance(cmd, click.Group):
        arg = args[i]
        if arg == "--":
            break
        if arg.startswith("-"):
            if arg in ("-h", "--help", "--version"):
                return ""
            if "=" not in arg and _takes_value(cmd, arg):
                i += 1
            i += 1
            continue
        sub = cmd.get_command(click.Context(cmd), arg)
        if sub is None:
            break
        words.append(arg)
        cmd, i = sub, i + 1
    if any(a in ("-h", "--help") for a in args[i:]):
        return ""
    return " ".join(words)


def _takes_value(cmd: click.Command, option: str) -> bool:
    for param in cmd.params:
        if isinstance(param, click.Option) and option in (*param.opts, *param.secondary_opts):
            return not (param.is_flag or param.count)
    return False


def record_invocation(group: click.Group, args: Sequence[str], exit_code: int, error: str = "") -> str:
    """Append the audit record of one command; returns a warning ("" when fine). Never raises."""
    command = command_words(group, args)
    if command in _NOT_AUDITED:
        return ""
    try:
        config_path = _option_value(args, "--config") or os.environ.get("AMBER_CONFIG")
        log = audit_service.AuditLog(audit_service.resolve_path(config_path))
        config_file = config_path or default_config_path()
        if os.path.exists(config_file):
            audit_service.record_config_change(log, config_file, audit_service.file_sha256(config_file))
        repository = _option_value(args, "-r") or _option_value(args, "--repo") or os.environ.get(
            "AMBER_REPOSITORY", "")  # fmt: skip
        log.append(audit_service.operation_fields(command, list(args), exit_code, error, repository))
    except AmberError as exc:
        return f"audit log not written: {exc.message}"
    return ""


def _option_value(args: Sequence[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg[len(name) + 1 :]
    return None


def warn(message: str) -> None:
    if message:
        err_console.print(f"[yellow]warning:[/] {plain(message)}", highlight=False)
