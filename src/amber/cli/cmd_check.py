"""check."""

from __future__ import annotations

import click

from amber.cli.context import AppContext, pass_app
from amber.cli.output import err_console, plain, quantity
from amber.services import check as check_service


@click.command()
@click.option("--read-data", is_flag=True, help="Read, decrypt and verify every pack.")
@click.option("--read-data-subset", metavar="n/t|P%", help="Read only a subset of packs.")
@pass_app
def check(app: AppContext, read_data: bool, read_data_subset: str | None) -> None:
    """Verify the repository's structure (and, on request, its data)."""
    with app.open() as repo:
        report = check_service.check(repo, read_data, read_data_subset)
    for w in report.warnings:
        err_console.print(f"[yellow]warning:[/] {plain(w)}", highlight=False)
    for e in report.errors:
        err_console.print(f"[red]error:[/] {plain(e)}", highlight=False)
    if report.damaged:
        snaps = sorted({s[:8] for s, _ in report.damaged})
        click.echo(f"damaged: {len(report.damaged)} path(s) in snapshot(s) {', '.join(snaps)}")
    click.echo(
        f"checked {quantity(report.snapshots, 'snapshot')}, {quantity(report.packs, 'pack')}, "
        f"{quantity(report.blobs, 'blob')}"
        + (f", read {report.packs_read} packs" if report.packs_read else "")
        + ("; no errors found" if report.ok else f"; {len(report.errors)} error(s)")
    )
    check_service.raise_if_failed(report)


COMMANDS = [check]
