"""repair: a command group. Each way of repairing is one subcommand; add more with
``@repair.command()`` in this module (or ``repair.add_command`` from another)."""

from __future__ import annotations

import click

from amber.cli.cmd_heal import heal
from amber.cli.cmd_heal import packs as heal_packs
from amber.cli.context import AppContext, pass_app
from amber.cli.output import echo, emit_json, err_console, plain
from amber.errors import UsageError
from amber.services import repair as repair_service


@click.group(invoke_without_command=True)
@click.option("--from", "from_repo", metavar="REPO", help="Alias of `repair packs --from REPO`.")
@click.option("--from-password-file", type=click.Path(dir_okay=False), help="Password file of the replica.")
@click.option("--from-password-command", help="Command printing the replica's password.")
@click.option("--read-data", is_flag=True, help="With --from: also read every pack here.")
@click.pass_context
def repair(
    ctx: click.Context, from_repo: str | None, from_password_file: str | None,
    from_password_command: str | None, read_data: bool,
) -> None:  # fmt: skip
    """Repair the index or damaged snapshots; `repair --from REPLICA` heals packs from a replica."""
    if ctx.invoked_subcommand is not None:
        if from_repo or from_password_file or from_password_command or read_data:
            raise UsageError("--from and its options go either before no subcommand or after `repair packs`")
        return
    if not from_repo:
        echo(ctx.get_help())
        raise UsageError("give a subcommand (index, snapshots, packs) or --from REPLICA")
    app = ctx.find_object(AppContext)
    assert app is not None
    app.operation.record.command = "repair packs"
    heal(app, from_repo, from_password_file, from_password_command, read_data)


@repair.command("index")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_app
def repair_index(app: AppContext, as_json: bool) -> None:
    """Rebuild the index from the pack headers."""
    with app.open(lock=False) as repo:
        r = repair_service.repair_index(repo)
    if as_json:
        emit_json({
            "message_type": "summary", "packs": r.packs, "blobs": r.blobs, "bad_packs": r.bad_packs,
            "dropped_packs": r.dropped_packs, "added_packs": r.added_packs,
            "index_written": r.index_written, "index_removed": r.index_removed,
        })  # fmt: skip
        return
    for bad in r.bad_packs:
        err_console.print(f"[yellow]warning:[/] pack {plain(bad)} (not indexed)", highlight=False)
    echo(
        f"indexed {r.blobs} blobs in {r.packs} packs ({r.added_packs} newly indexed, "
        f"{r.dropped_packs} missing packs dropped); wrote {r.index_written} index file(s), "
        f"removed {r.index_removed}"
    )


@repair.command("snapshots")
@click.option("--dry-run", "-n", is_flag=True, help="Only show what would be rewritten.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_app
def repair_snapshots(app: AppContext, dry_run: bool, as_json: bool) -> None:
    """Rewrite snapshots that reference lost data; damaged files are kept and marked."""
    with app.open(lock=False) as repo:
        r = repair_service.repair_snapshots(repo, dry_run)
    if as_json:
        emit_json({
            "message_type": "summary", "dry_run": dry_run, "snapshots": r.snapshots,
            "repaired": [{"old": old, "new": new} for old, new in r.repaired],
            "damaged": [{"snapshot": s, "path": p} for s, p in r.damaged], "unreadable": r.unreadable,
        })  # fmt: skip
        return
    for name in r.unreadable:
        err_console.print(f"[yellow]warning:[/] snapshot {plain(name[:8])} cannot be read", highlight=False)
    for snap, path in r.damaged:
        echo(f"{snap[:8]} damaged: {plain(path)}")
    for old, new in r.repaired:
        echo(f"snapshot {old[:8]} " + (f"-> {new[:8]}" if new else "would be rewritten"))
    echo(
        f"{len(r.repaired)} of {r.snapshots} snapshot(s) {'need' if dry_run else 'were'} rewritten, "
        f"{len(r.damaged)} damaged path(s)"
    )


repair.add_command(heal_packs)
COMMANDS = [repair]
