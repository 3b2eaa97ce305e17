"""migrate."""

from __future__ import annotations

import sys
from typing import Any

import click

from amber.cli.context import AppContext, pass_app
from amber.cli.output import BarProgress, err_console, human_bytes, plain, showing
from amber.services import migrate as migrate_service


def _plan_lines(outcome: migrate_service.MigrateOutcome) -> list[str]:
    s = outcome.survey
    return [
        f"packs:          {len(s.packs)} ({human_bytes(sum(s.packs.values()))}) to rewrite",
        f"index files:    {len(s.index_files)} to rewrite",
        f"unindexed packs: {s.unindexed_packs} to examine (format-1 ones are rewritten and indexed)",
        f"snapshots:      {len(s.snapshots)} to rewrite (new IDs; each keeps its old one as `original`)",
        f"audit segments: {len(s.audit_segments)} to rewrite",
    ]


@click.command()
@click.option("--dry-run", "-n", is_flag=True, help="Only show what would be rewritten.")
@pass_app
def migrate(app: AppContext, dry_run: bool) -> None:
    """Upgrade the repository to the current format (version 3), in place.

    Takes an exclusive lock. Safe to interrupt: the repository stays readable
    and running migrate again continues where it stopped.
    """
    progress: Any = BarProgress("migrate") if sys.stderr.isatty() and not dry_run else None
    with app.open(lock=False) as repo, showing(app.operation.events, progress):
        outcome = migrate_service.migrate(repo, dry_run)
    if outcome.version_before >= 2 and not outcome.migrating_before:
        if outcome.version_after > outcome.version_before:
            click.echo(f"repository is now format version {outcome.version_after} (only config rewritten)")
        elif dry_run and outcome.version_before < 3:
            click.echo("dry run: would set config version 3 (nothing else is rewritten)")
        else:
            click.echo(f"repository is already format version {outcome.version_before}; nothing to do")
        return
    if dry_run:
        start = "continue the migration" if outcome.migrating_before else "set config version 2 (migrating)"
        click.echo(f"dry run: would {start}, then rewrite:")
        click.echo("\n".join(_plan_lines(outcome)))
        click.echo("and finally clear `migrating` and set version 3 once no format-1 object is left")
        return
    r = outcome.result
    click.echo(
        f"rewrote {r.packs_rewritten} packs ({human_bytes(r.bytes_rewritten)}), "
        f"{r.index_files_rewritten} index files, {len(r.snapshots_rewritten)} snapshots, "
        f"{r.audit_segments_rewritten} audit segments; removed {r.objects_removed} format-1 objects"
    )
    for problem in r.problems:
        err_console.print(f"[red]error:[/] {plain(problem)}", highlight=False)
    if outcome.complete:
        click.echo(f"repository is now format version {outcome.version_after}")
    migrate_service.raise_if_incomplete(outcome)


COMMANDS = [migrate]
