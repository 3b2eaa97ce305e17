"""audit show|verify|push. Commands are recorded by the audit observer of their operation (cli.main)."""

from __future__ import annotations

import os

import click

from amber.cli.context import AppContext, pass_app
from amber.cli.output import echo, emit_json_text
from amber.errors import AuditLogBroken
from amber.ops.audit import log as audit_service
from amber.ops.audit.chain import parse_lines


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
