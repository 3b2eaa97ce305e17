"""rollback: put a job's live data back to a local snapshot or a repository snapshot."""

from __future__ import annotations

import click

from amber.cli.context import AppContext, pass_app
from amber.cli.output import echo, err_console, plain
from amber.ops.localsnap.requests import RollbackRequest
from amber.ops.localsnap.rollback import rollback


@click.command("rollback")
@click.argument("job")
@click.option("--to", "to", default="latest", show_default=True, help="Local snapshot NAME, or latest.")
@click.option(
    "--from-repo",
    help="Restore this repository snapshot instead (ID, or latest: the job's newest that holds its volumes), "
    "verify it, then swap.",
)
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option("--yes", is_flag=True, help="Do it (rollback replaces live data).")
@click.option("--destroy-newer", is_flag=True, help="ZFS: allow destroying snapshots newer than the target.")
@click.option("--stop", "stop", multiple=True, help="Command run before the swap (default: hooks.stop).")
@click.option("--start", "start", multiple=True, help="Command run after the swap (default: hooks.start).")
@pass_app
def rollback_command(
    app: AppContext,
    job: str,
    to: str,
    from_repo: str | None,
    dry_run: bool,
    yes: bool,
    destroy_newer: bool,
    stop: tuple[str, ...],
    start: tuple[str, ...],
) -> None:
    """Roll JOB's live data back (Btrfs: subvolume swap; ZFS: zfs rollback; LVM: merge; --from-repo: swap)."""
    config = app.config()
    hooks = config.job(job).hooks
    req = RollbackRequest(
        job, to, from_repo, dry_run, yes, destroy_newer, list(stop or hooks.stop), list(start or hooks.start)
    )

    def note(msg: str) -> None:
        err_console.print(plain(msg), highlight=False)

    result = rollback(config, req, app.passwords, note)
    echo(f"{'plan' if not result.done else 'rolled back'} {job} to {result.target}:")
    for step in result.steps:
        echo(f"  {step}")
    c = result.changes
    changed = (
        f"{c.added} added, {c.removed} removed, {c.modified} modified"
        if c
        else f"changes not counted ({result.not_counted or 'no reason given'})"
    )
    if result.done:
        kept = f"; the previous state is kept as {result.kept_as}" if result.kept_as else ""
        echo(f"done in {result.seconds:.2f}s: {changed}{kept}")
    else:
        echo(f"would change: {changed}")


COMMANDS = [rollback_command]
