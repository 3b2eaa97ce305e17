"""quickstart: the embedded default job."""

from __future__ import annotations

from pathlib import Path

import click

from amber.cli.output import echo, human_bytes
from amber.services import quickstart as qs


@click.command()
@click.argument("source", required=False, type=click.Path(exists=True, file_okay=False))
@click.option("--repository", type=click.Path(file_okay=False), help="Default: the data directory.")
def quickstart(source: str | None, repository: str | None) -> None:
    """Back up SOURCE (default ~/Desktop, else the current directory), list, restore, verify."""
    result = qs.run(Path(source) if source else None, Path(repository) if repository else None)
    s = result.outcome.snapshot.summary
    echo(f"repository: {result.repository}")
    echo(
        f"backup of {result.source}: snapshot {result.outcome.snapshot_id[:8]}, "
        f"{s.total_files} files, {human_bytes(s.total_bytes)} "
        f"({s.files_unmodified} unchanged, {human_bytes(s.data_added_stored)} stored)"
    )
    echo(f"snapshots in repository: {len(result.snapshots)}")
    for sid, snap in result.snapshots[-5:]:
        echo(f"  {sid[:8]}  {snap.time[:19]}  {', '.join(snap.paths)}")
    echo(
        f"restored {result.restored.files} files into {result.restore_dir}, "
        f"SHA-256 verified {result.restored.verified}, byte-compared {result.compared}, "
        f"mismatches {len(result.mismatches)}"
    )
    echo("check: " + ("no errors found" if result.report.ok else f"{len(result.report.errors)} errors"))
    qs.raise_if_failed(result)
    echo("OK: backup restores byte-identically")


COMMANDS = [quickstart]
