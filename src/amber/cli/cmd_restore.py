"""restore and dump."""

from __future__ import annotations

import sys
from typing import Any

import click

from amber.cli.context import AppContext, pass_app
from amber.cli.options import make_filter, snapshot_filter_options
from amber.cli.output import BarProgress, echo, err_console, human_bytes, plain, quantity, showing
from amber.services import browse
from amber.services import restore as restore_service


@click.command()
@click.argument("snapshot")
@click.option(
    "-t",
    "--target",
    required=True,
    type=click.Path(file_okay=False),
    help="Directory to restore into (created if missing).",
)
@click.option("-i", "--include", multiple=True, help="Restore only matching paths.")
@click.option("-e", "--exclude", multiple=True, help="Skip matching paths.")
@click.option("--verify", is_flag=True, help="Re-hash restored files against their SHA-256.")
@snapshot_filter_options
@pass_app
def restore(
    app: AppContext, snapshot: str, target: str, include: tuple[str, ...],
    exclude: tuple[str, ...], verify: bool, hosts: tuple[str, ...], tags: tuple[str, ...],
    paths: tuple[str, ...],
) -> None:  # fmt: skip
    """Restore SNAPSHOT[:SUBPATH] into TARGET."""
    req = restore_service.RestoreRequest(
        snapshot, target, list(include), list(exclude), verify, make_filter(hosts, tags, paths)
    )
    progress: Any = BarProgress("restore") if sys.stderr.isatty() else None
    with app.open() as repo, showing(app.operation.events, progress):
        result = restore_service.restore(repo, req)
    for warning in result.warnings[:20]:
        err_console.print(f"[yellow]warning:[/] {plain(warning)}", highlight=False)
    for error in result.errors:
        err_console.print(f"[red]error:[/] {plain(error)}", highlight=False)
    summary = (f"restored {quantity(result.files, 'file')}, {quantity(result.dirs, 'dir')}, "
               f"{human_bytes(result.bytes)}")  # fmt: skip
    if result.blobs_skipped:
        summary += f"; {result.blobs_skipped} blobs already in place"
    if verify:
        summary += f"; verified {quantity(result.verified, 'file')}"
    echo(summary)
    restore_service.raise_if_damaged(result)


@click.command()
@click.argument("snapshot")
@click.argument("path")
@pass_app
def dump(app: AppContext, snapshot: str, path: str) -> None:
    """Write one file from SNAPSHOT to standard output."""
    with app.open() as repo:
        browse.dump(repo, snapshot, path, sys.stdout.buffer)
    sys.stdout.buffer.flush()


COMMANDS = [restore, dump]
