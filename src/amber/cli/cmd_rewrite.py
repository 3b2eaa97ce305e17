"""rewrite: new snapshots without the paths that match; the originals stay unless --forget."""

from __future__ import annotations

from typing import Any

import click

from amber.cli.context import AppContext, pass_app
from amber.cli.options import make_filter, snapshot_filter_options
from amber.cli.output import echo, emit_json, err_console, human_bytes, plain, quantity, show_path
from amber.engine.patterns import read_exclude_files
from amber.errors import UsageError
from amber.services import rewrite as rewrite_service


def parse_sha256(values: tuple[str, ...]) -> list[bytes]:
    out = []
    for text in values:
        try:
            digest = bytes.fromhex(text.strip())
        except ValueError:
            digest = b""
        if len(digest) != 32:
            raise UsageError(f"--sha256 {text!r}: expected 64 hex digits")
        out.append(digest)
    return out


def removed_json(entry: rewrite_service.SnapshotRewrite) -> dict[str, Any]:
    return {
        "snapshot": entry.old_id, "new_snapshot": entry.new_id or None, "emptied": entry.emptied,
        "flags": entry.flags, "files": entry.files, "bytes": entry.bytes,
        "removed": [{"path": show_path(r.path), "type": r.type, "files": r.files, "bytes": r.bytes}
                    for r in entry.removed],
    }  # fmt: skip


def print_rewrites(result: rewrite_service.RewriteResult, verbose_paths: int = 20) -> None:
    for entry in result.rewritten:
        empty = " (empty: not rewritten)" if entry.emptied else ""
        arrow = f" -> {entry.new_id[:8]}" if entry.new_id else empty
        flags = f" [{', '.join(entry.flags)}]" if entry.flags else ""
        echo(f"snapshot {entry.old_id[:8]}{arrow}{flags}: {quantity(entry.files, 'file')}, "
             f"{human_bytes(entry.bytes)} left out")  # fmt: skip
        for removed in entry.removed[:verbose_paths]:
            kind = "/" if removed.type == "dir" else ""
            echo(f"  - {show_path(removed.path)}{kind}")
        if len(entry.removed) > verbose_paths:
            echo(f"  ... and {len(entry.removed) - verbose_paths} more")


@click.command()
@click.argument("snapshot_ids", nargs=-1)
@click.option(
    "-e",
    "--exclude",
    "excludes",
    multiple=True,
    metavar="PATTERN",
    help="Leave out paths matching PATTERN (backup's --exclude rules).",
)
@click.option(
    "--exclude-file",
    "exclude_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Read patterns from a file, one per line.",
)
@click.option(
    "--sha256",
    "hashes",
    multiple=True,
    metavar="HEX",
    help="Leave out files with this content (SHA-256), under any name.",
)
@snapshot_filter_options
@click.option("--forget", is_flag=True, help="Remove the originals once the rewrites are written.")
@click.option("-n", "--dry-run", is_flag=True, help="Only show what would be left out.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_app
def rewrite(
    app: AppContext, snapshot_ids: tuple[str, ...], excludes: tuple[str, ...], exclude_files: tuple[str, ...],
    hashes: tuple[str, ...], hosts: tuple[str, ...], tags: tuple[str, ...], paths: tuple[str, ...],
    forget: bool, dry_run: bool, as_json: bool,
) -> None:  # fmt: skip
    """Write new snapshots without the paths that match (all snapshots, or the SNAPSHOT_IDS / filter).

    The originals stay (the rewrites are tagged `rewrite`) unless --forget; prune
    reclaims the space, `amber purge` does all of it and proves the data is gone.
    """
    patterns = list(excludes)
    try:
        patterns += read_exclude_files(exclude_files)
    except OSError as exc:
        raise UsageError(f"--exclude-file: {exc.strerror}: {exc.filename}") from exc
    req = rewrite_service.RewriteRequest(patterns, parse_sha256(hashes), list(snapshot_ids),
                                         make_filter(hosts, tags, paths), forget, dry_run)  # fmt: skip
    with app.open(lock=False) as repo:  # the service takes the lock
        result = rewrite_service.rewrite(repo, req)
    for sid, problem in result.damaged:
        err_console.print(f"[yellow]warning:[/] snapshot {plain(sid[:8])} is unreadable and was left alone: "
                          f"{plain(str(problem))}", highlight=False)  # fmt: skip
    if as_json:
        emit_json({"dry_run": dry_run, "examined": result.examined, "forgotten": result.forgotten,
                   "snapshots": [removed_json(e) for e in result.rewritten]})  # fmt: skip
        return
    print_rewrites(result)
    n = len(result.rewritten)
    if dry_run:
        echo(f"dry run: would rewrite {n} of {quantity(result.examined, 'snapshot')}")
    else:
        gone = f"; {len(result.forgotten)} original(s) removed (run `amber prune` to reclaim the space)"
        echo(f"rewrote {n} of {quantity(result.examined, 'snapshot')}" + (gone if forget else ""))


COMMANDS = [rewrite]
