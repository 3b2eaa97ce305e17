"""check."""

from __future__ import annotations

import time

import click

from amber.cli.context import AppContext, pass_app
from amber.cli.output import echo, err_console, plain, quantity
from amber.engine.checker import CheckReport
from amber.ops.config.target import load_optional, state_path
from amber.ops.run import manual_check
from amber.services import check as check_service


@click.command()
@click.option("--read-data", is_flag=True, help="Read, decrypt and verify every pack.")
@click.option("--read-data-subset", metavar="n/t|P%", help="Read only a subset of packs.")
@pass_app
def check(app: AppContext, read_data: bool, read_data_subset: str | None) -> None:
    """Verify the repository's structure (and, on request, its data).

    The outcome is recorded in the state database, where `status --copies` counts it as verification.
    """
    started = time.time()
    with app.open() as repo:
        report = check_service.check(repo, read_data, read_data_subset)
    target = app.target()
    config, _problem = load_optional(app.config_path)
    problem = manual_check.record(state_path(config), target.name, target.location, started, report,
                                  read_data, read_data_subset)  # fmt: skip
    if problem:
        err_console.print(f"[yellow]warning:[/] {plain(problem)}", highlight=False)
    for w in report.warnings:
        err_console.print(f"[yellow]warning:[/] {plain(w)}", highlight=False)
    for e in report.errors:
        err_console.print(f"[red]error:[/] {plain(e)}", highlight=False)
    if report.damaged:
        snaps = sorted({s[:8] for s, _ in report.damaged})
        echo(f"damaged: {len(report.damaged)} path(s) in snapshot(s) {', '.join(snaps)}")
    echo(
        f"checked {quantity(report.snapshots, 'snapshot')}, {quantity(report.packs, 'pack')}, "
        f"{quantity(report.blobs, 'blob')}"
        + (_read(report, read_data_subset) if read_data or read_data_subset else "")
        + (_wal(report, read_data) if report.wal_objects else "")
        + ("; no errors found" if report.ok else f"; {len(report.errors)} error(s)")
    )
    check_service.raise_if_failed(report)


def _wal(report: CheckReport, read_data: bool) -> str:
    read = f" ({report.wal_read} read)" if read_data else ""
    return f", {quantity(report.wal_objects, 'WAL file')}{read}"


def _read(report: CheckReport, subset: str | None) -> str:
    text = f", read {report.packs_read} of {quantity(report.packs, 'pack')}"
    if subset and report.packs and not report.packs_read:
        text += (f" (subset {subset} picks packs by their ID, and no pack falls in this part; "
                 "another part or a percentage reads some)")  # fmt: skip
    return text


COMMANDS = [check]
