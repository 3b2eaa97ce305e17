"""stats: what a snapshot holds by file type, size, age or directory; largest files; growth."""

from __future__ import annotations

import click

from amber.catalog.stats import BY, Growth, SnapshotStats
from amber.catalog.statsource import snapshot_stats
from amber.cli.context import AppContext, pass_app
from amber.cli.options import make_filter, snapshot_filter_options
from amber.cli.output import emit_json, err_console, human_bytes, plain, show_path


def _notice(text: str) -> None:
    err_console.print(f"note: {plain(text)}", soft_wrap=True, highlight=False)


def _signed(n: int, size: bool = False) -> str:
    text = human_bytes(abs(n)) if size else f"{abs(n):,}"
    return ("-" if n < 0 else "+") + text


def _document(stats: SnapshotStats, change: Growth | None, shown: int | None) -> dict[str, object]:
    doc: dict[str, object] = {
        "snapshot": stats.snapshot_id, "time": stats.time, "by": stats.by, "files": stats.files,
        "bytes": stats.size, "dirs": stats.dirs, "symlinks": stats.symlinks, "other": stats.other,
        "groups": [{"key": g.key, "files": g.files, "bytes": g.size} for g in stats.groups[:shown]],
        "largest": [{"path": show_path(p), "size": size} for p, size in stats.largest],
        "growth": None,
    }  # fmt: skip
    if change is not None:
        doc["growth"] = {
            "previous": change.previous_id, "previous_time": change.previous_time,
            "files": change.files, "bytes": change.size,
            "groups": {k: {"files": f, "bytes": b} for k, (f, b) in sorted(change.groups.items())},
        }  # fmt: skip
    return doc


@click.command()
@click.argument("snapshot", default="latest")
@click.option("--by", type=click.Choice(BY), default="type", show_default=True,
              help="Group by file type (extension), size, modification age or top directory.")  # fmt: skip
@click.option("--top", type=click.IntRange(1), default=10, show_default=True,
              help="How many types or directories, and largest files, to show.")  # fmt: skip
@snapshot_filter_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--no-catalog", is_flag=True, help="Walk the snapshot's trees instead of using the catalog.")
@pass_app
def stats(
    app: AppContext, snapshot: str, by: str, top: int, hosts: tuple[str, ...], tags: tuple[str, ...],
    paths: tuple[str, ...], as_json: bool, no_catalog: bool,
) -> None:  # fmt: skip
    """What SNAPSHOT (default: latest) holds, grouped; its largest files; growth since the previous one."""
    with app.open(lock=False) as repo:
        use_catalog = not no_catalog and app.catalog_enabled()
        flt = make_filter(hosts, tags, paths)
        figures, change = snapshot_stats(repo, snapshot, flt, by, top, use_catalog, _notice)
    shown = top if by in ("type", "dir") else None
    if as_json:
        emit_json(_document(figures, change, shown))
        return
    click.echo(f"snapshot {figures.snapshot_id[:8]}  {figures.time[:19]}")
    click.echo(
        f"{figures.files:,} files ({human_bytes(figures.size)}), {figures.dirs:,} directories, "
        f"{figures.symlinks:,} symlinks, {figures.other:,} other"
    )
    if change is not None:
        click.echo(
            f"since {change.previous_id[:8]} ({change.previous_time[:19]}): "
            f"{_signed(change.files)} files, {_signed(change.size, size=True)}"
        )
    click.echo(f"\n{'by ' + by:<32} {'files':>10} {'size':>12}" + ("  change" if change else ""))
    for g in figures.groups[:shown]:
        line = f"  {show_path(g.key):<30} {g.files:>10,} {human_bytes(g.size):>12}"
        if change is not None and g.key in change.groups:
            line += f"  {_signed(change.groups[g.key][1], size=True)}"
        click.echo(line)
    if figures.largest:
        click.echo("\nlargest files")
        for path, size in figures.largest:
            click.echo(f"  {human_bytes(size):>12}  {show_path(path)}")


COMMANDS = [stats]
