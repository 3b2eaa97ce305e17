"""unlock: remove stale locks (all locks with --remove-all)."""

from __future__ import annotations

import click

from amber.cli.context import AppContext, pass_app
from amber.cli.output import echo, err_console
from amber.services import unlock as unlock_service


def _holder(entry: unlock_service.LockEntry) -> str:
    if entry.info is None:
        return "unreadable lock file"
    kind = "exclusive" if entry.info.exclusive else "shared"
    return f"{kind} lock of pid {entry.info.pid} on {entry.info.hostname}"


@click.command()
@click.option("--remove-all", is_flag=True, help="Also remove live locks (only when no amber process runs).")
@pass_app
def unlock(app: AppContext, remove_all: bool) -> None:
    """Remove stale locks. Stale locks are ignored anyway; this only tidies up."""
    if remove_all:
        err_console.print(
            "[yellow]warning:[/] --remove-all removes live locks too; a running backup or prune "
            "loses its protection", highlight=False,
        )  # fmt: skip
    with app.open(lock=False) as repo:
        result = unlock_service.unlock(repo, remove_all)
    for entry in result.removed:
        echo(f"removed {entry.name[:8]}: {_holder(entry)} ({entry.reason})")
    for entry in result.kept:
        echo(f"kept {entry.name[:8]}: {_holder(entry)} ({entry.reason})")
    echo(f"removed {len(result.removed)} lock{'s' if len(result.removed) != 1 else ''}, "
               f"{len(result.kept)} left")  # fmt: skip


COMMANDS = [unlock]
