"""snapshots, ls, diff and manifest."""

from __future__ import annotations

import datetime as dt
import json
import stat
import sys

import click
import msgspec

from amber.cli.context import AppContext, pass_app
from amber.cli.options import make_filter, snapshot_filter_options
from amber.cli.output import echo, echo_table, emit_json_text, err_console, plain, quantity, show_path
from amber.cli.walkproblems import WalkProblems
from amber.errors import AmberError
from amber.repository import Node, Snapshot
from amber.services import browse
from amber.services.snapshots import select

_TYPE_CHAR = {"dir": "d", "symlink": "l", "fifo": "p", "chardev": "c", "blockdev": "b"}


@click.command()
@snapshot_filter_options
@click.option("--json", "as_json", is_flag=True, help="A JSON array of snapshots.")
@pass_app
def snapshots(
    app: AppContext, hosts: tuple[str, ...], tags: tuple[str, ...], paths: tuple[str, ...],
    as_json: bool,
) -> None:  # fmt: skip
    """List snapshots."""
    damaged: list[tuple[str, AmberError]] = []
    with app.open(lock=False, read_only=True) as repo:
        found = select(repo, make_filter(hosts, tags, paths), damaged)
    for sid, exc in damaged:
        err_console.print(
            f"[red]error:[/] snapshot {plain(sid[:8])} is unreadable: {plain(str(exc))}", soft_wrap=True
        )
    if as_json:
        emit_json_text(browse_json(found))
        return
    rows = [("ID", "Time", "Host", "Tags", "Paths")]
    for sid, s in found:
        flag = " (partial)" if s.partial else ""
        rows.append((sid[:8], s.datetime.strftime("%Y-%m-%d %H:%M:%S %z"), show_path(s.hostname),
                     show_path(",".join(s.tags)), show_path(", ".join(s.paths)) + flag))  # fmt: skip
    echo_table(rows)
    echo(quantity(len(found), "snapshot"))


def browse_json(found: list[tuple[str, Snapshot]]) -> str:
    out = []
    for sid, s in found:
        doc = msgspec.to_builtins(s)
        doc.pop("tree", None)
        out.append({"id": sid, "short_id": sid[:8], "tree": s.tree.hex(), **doc})
    return json.dumps(out, indent=2, ensure_ascii=False)


def _mode_string(node: Node) -> str:
    return _TYPE_CHAR.get(node.type, "-") + stat.filemode(node.mode)[1:]


def _long(path: bytes, node: Node) -> str:
    when = dt.datetime.fromtimestamp(node.mtime_ns / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    user = show_path(node.user) or str(node.uid)
    group = show_path(node.group) or str(node.gid)
    line = f"{_mode_string(node)} {user:>8} {group:>8} {node.size:>12} {when}  {show_path(path)}"
    if node.type == "symlink":
        line += f" -> {show_path(node.link_target)}"
    return line


@click.command()
@click.argument("snapshot")
@click.argument("path", default="/")
@click.option("-l", "--long", "long_", is_flag=True, help="Show mode, owner, size and time.")
@pass_app
def ls(app: AppContext, snapshot: str, path: str, long_: bool) -> None:
    """List files in SNAPSHOT (under PATH)."""
    problems = WalkProblems()
    with app.open(lock=False, read_only=True) as repo:
        for p, node in browse.ls(repo, snapshot, path, problems):
            echo(_long(p, node) if long_ else show_path(p))
    problems.raise_if_any()


@click.command()
@click.argument("snapshot1")
@click.argument("snapshot2")
@pass_app
def diff(app: AppContext, snapshot1: str, snapshot2: str) -> None:
    """Show what changed between two snapshots."""
    counts = {"+": 0, "-": 0, "M": 0}
    problems = WalkProblems()
    with app.open(lock=False, read_only=True) as repo:
        for sign, path in browse.diff(repo, snapshot1, snapshot2, problems):
            counts[sign] += 1
            echo(f"{sign}    {show_path(path)}")
    echo(f"added {counts['+']}, removed {counts['-']}, modified {counts['M']}", err=True)
    problems.raise_if_any()


@click.command()
@click.argument("snapshot", metavar="SNAPSHOT[:SUBPATH]")
@click.option("--absolute", is_flag=True, help="Full paths in the snapshot (check against the live source).")
@pass_app
def manifest(app: AppContext, snapshot: str, absolute: bool) -> None:
    """Print a SHA-256 manifest that `sha256sum -c` accepts.

    Paths are relative to what `restore SNAPSHOT[:SUBPATH] --target T` writes:
    check a restore with `cd T && sha256sum -c`.
    """
    out = sys.stdout.buffer
    problems = WalkProblems()
    with app.open(lock=False, read_only=True) as repo:
        lines = browse.manifest(repo, snapshot, absolute, escape_controls=out.isatty(), on_error=problems)
        for line in lines:
            out.write(line)
    out.flush()
    problems.raise_if_any()


COMMANDS = [snapshots, ls, diff, manifest]
