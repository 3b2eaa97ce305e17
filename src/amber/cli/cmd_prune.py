"""prune."""

from __future__ import annotations

import click

from amber.cli.context import AppContext, pass_app
from amber.cli.output import echo, emit_json, err_console, human_bytes, plain, quantity
from amber.engine.prune_plan import parse_size
from amber.services import prune as prune_service


@click.command()
@click.option(
    "--max-unused",
    default="5%",
    show_default=True,
    metavar="PCT|SIZE|unlimited",
    help="Unused space to tolerate in partly used packs before repacking them.",
)
@click.option("--max-repack-size", metavar="SIZE", help="Read at most this much from packs to repack.")
@click.option(
    "--recompress",
    type=click.IntRange(1, 22),
    metavar="LEVEL",
    help="Rewrite data packs at this zstd level (within --max-repack-size).",
)
@click.option("--dry-run", "-n", is_flag=True, help="Only show what would be done.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_app
def prune(
    app: AppContext, max_unused: str, max_repack_size: str | None, recompress: int | None,
    dry_run: bool, as_json: bool,
) -> None:  # fmt: skip
    """Delete data no snapshot references; repack partly used packs."""
    options = prune_service.PruneOptions(
        max_unused=max_unused,
        max_repack_size=parse_size(max_repack_size) if max_repack_size else None,
        recompress=recompress,
        dry_run=dry_run,
    )
    with app.open(lock=False) as repo:
        result = prune_service.prune(repo, options)
    if as_json:
        emit_json({"message_type": "summary", **result.as_dict()})
        return
    for w in result.warnings:
        err_console.print(f"[yellow]warning:[/] {plain(w)}", highlight=False)
    p = result.plan
    would = "would be " if dry_run else ""
    lines = [
        f"{'dry run: ' if dry_run else ''}{quantity(result.snapshots, 'snapshot')}",
        f"keep:     {p.keep.packs} packs, {p.keep.blobs} blobs, {human_bytes(p.keep.bytes)}"
        f" ({human_bytes(p.unused_after)} unused)",
        f"repack:   {p.repacked.packs} packs, {p.repacked.blobs} used blobs "
        f"({human_bytes(p.repacked.bytes)}) {would}copied",
        f"delete:   {p.deleted.packs} unused packs ({human_bytes(p.deleted.bytes)}) {would}marked",
    ]
    if not dry_run:
        lines.append(f"removed:  {result.deleted_packs} packs, {human_bytes(result.deleted_bytes)} freed")
    if result.wal_removed or result.wal_kept:
        freed = human_bytes(result.wal_removed_bytes)
        lines.append(f"wal:      {result.wal_removed} archived WAL files ({freed}) {would}removed, "
                     f"{result.wal_kept} kept")  # fmt: skip
    if result.pending_packs:
        lines.append(
            f"pending:  {result.pending_packs} packs ({human_bytes(result.pending_bytes)}) wait for "
            "backups that started earlier; the next prune deletes them"
        )
    echo("\n".join(lines))


COMMANDS = [prune]
