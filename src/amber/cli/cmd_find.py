"""find, history and catalog: searching every backup from the local catalog."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import stat
import time
from collections.abc import Iterable, Iterator

import click

from amber.catalog import store
from amber.catalog.ingest import sync
from amber.catalog.query import (
    KIND_BY_LETTER,
    FindQuery,
    Hit,
    SizeBound,
    Version,
    group_versions,
    history_events,
    ordered,
)
from amber.catalog.search import find_hits, history_timeline
from amber.cli.context import AppContext, pass_app
from amber.cli.options import make_filter, snapshot_filter_options
from amber.cli.output import echo, emit_json, emit_json_text, err_console, human_bytes, plain, show_path
from amber.cli.walkproblems import WalkProblems
from amber.errors import UsageError
from amber.repository.model import parse_time

_TYPE_CHAR = {"dir": "d", "symlink": "l", "fifo": "p", "chardev": "c", "blockdev": "b"}


def _notice(text: str) -> None:
    err_console.print(f"note: {plain(text)}", soft_wrap=True, highlight=False)


def _when(text: str | None, option: str) -> dt.datetime | None:
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError as exc:
        raise UsageError(f"{option} {text!r}: expected a date like 2026-12-01 or 2026-12-01T08:00") from exc


def _ns(moment: dt.datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1_000_000) * 1000


def _line(hit: Hit) -> str:
    mode = _TYPE_CHAR.get(hit.kind, "-") + stat.filemode(hit.mode)[1:]
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(hit.mtime_ns // 1_000_000_000))
    return f"{mode} {hit.size:>12} {when}  {show_path(hit.path)}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "es" if word.endswith("ch") else "s")


@click.command()
@click.argument("patterns", nargs=-1, required=True)
@click.option("-i", "--ignore-case", is_flag=True, help="Ignore case (Unicode case folding: Ä = ä, SS = ß).")
@click.option("--type", "kinds", multiple=True, type=click.Choice(sorted(KIND_BY_LETTER)),
              help="Only this type: f file, d directory, l symlink, p fifo, c/b device.")  # fmt: skip
@click.option("--size", "sizes", multiple=True, metavar="[+-]N[KMGT]",
              help="Larger (+) or smaller (-) than N.")  # fmt: skip
@click.option("--newer", metavar="DATE", help="Modified after DATE.")
@click.option("--older", metavar="DATE", help="Modified before DATE.")
@click.option("--snapshot-since", metavar="DATE", help="Only snapshots taken at or after DATE.")
@click.option("--snapshot-until", metavar="DATE", help="Only snapshots taken at or before DATE.")
@snapshot_filter_options
@click.option("--newest-first", is_flag=True, help="Newest snapshots first.")
@click.option("--limit", type=click.IntRange(1), help="Stop after N results.")
@click.option("--versions", is_flag=True, help="One line per distinct version, with the snapshots it is in.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--no-catalog", is_flag=True, help="Walk the snapshot trees instead of using the catalog.")
@pass_app
def find(
    app: AppContext, patterns: tuple[str, ...], ignore_case: bool, kinds: tuple[str, ...],
    sizes: tuple[str, ...], newer: str | None, older: str | None, snapshot_since: str | None,
    snapshot_until: str | None, hosts: tuple[str, ...], tags: tuple[str, ...], paths: tuple[str, ...],
    newest_first: bool, limit: int | None, versions: bool, as_json: bool, no_catalog: bool,
) -> None:  # fmt: skip
    """Find files whose name (or, with a '/', whole path) matches a PATTERN, in every snapshot."""
    query = FindQuery(
        patterns=patterns, ignore_case=ignore_case, kinds=frozenset(KIND_BY_LETTER[k] for k in kinds),
        sizes=tuple(SizeBound.parse(s) for s in sizes), newer_ns=_ns(_when(newer, "--newer")),
        older_ns=_ns(_when(older, "--older")), snapshot_since=_when(snapshot_since, "--snapshot-since"),
        snapshot_until=_when(snapshot_until, "--snapshot-until"), hosts=hosts, tags=tags, paths=paths,
    )  # fmt: skip
    problems = WalkProblems()
    with app.open(lock=False, read_only=True, load_index=False) as repo:
        hits = find_hits(repo, query, not no_catalog and app.catalog_enabled(), _notice, problems.in_snapshot)
    if versions:
        found = group_versions(hits)
        if newest_first:
            found.reverse()
        _print_lines((_version_line(v, as_json) for v in found[:limit]), as_json)
        if not as_json:
            echo(_plural(len(found[:limit]), "version"), err=True)
        problems.raise_if_any()
        return
    shown = ordered(hits, newest_first)[:limit]
    _print_lines((_hit_line(hit, as_json) for hit in shown), as_json)
    if not as_json:
        echo(_plural(len(shown), "match"), err=True)
    problems.raise_if_any()


def _hit_line(hit: Hit, as_json: bool) -> str:
    if as_json:
        doc = {"snapshot": hit.snapshot_id, "time": hit.snapshot_time, "path": show_path(hit.path),
               "type": hit.kind, "size": hit.size, "mtime": hit.mtime_ns,
               "sha256": hit.sha256.hex()}  # fmt: skip
        return json.dumps(doc, ensure_ascii=False)
    return f"{hit.snapshot_id[:8]}  {hit.snapshot_time[:19]}  {_line(hit)}"


def _version_line(v: Version, as_json: bool) -> str:
    if as_json:
        return json.dumps({"path": show_path(v.path), "type": v.kind, "size": v.size,
                           "mtime": v.mtime_ns, "sha256": v.sha256.hex(), "first_seen": v.first_seen,
                           "last_seen": v.last_seen, "snapshots": [s for s, _ in v.snapshots]},
                          ensure_ascii=False)  # fmt: skip
    span = f"{v.first_seen[:19]} .. {v.last_seen[:19]} ({_plural(len(v.snapshots), 'snapshot')})"
    return f"{span}  {v.kind:<7} {human_bytes(v.size):>10}  {show_path(v.path)}"


def _print_lines(lines: Iterable[str], as_json: bool, chunk: int = 1000) -> None:
    """Lines in chunks, not one write and flush each (a broad pattern has 100,000s).
    Each line is one record: paths in it are escaped, so it holds no line break."""
    for batch in _batched(lines, chunk):
        if as_json:
            emit_json_text("\n".join(batch))
        else:
            echo("\n".join(batch))


def _batched(items: Iterable[str], size: int) -> Iterator[tuple[str, ...]]:
    it = iter(items)
    while batch := tuple(itertools.islice(it, size)):
        yield batch


@click.command()
@click.argument("path")
@snapshot_filter_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event.")
@click.option("--no-catalog", is_flag=True, help="Walk the snapshot trees instead of using the catalog.")
@pass_app
def history(
    app: AppContext, path: str, hosts: tuple[str, ...], tags: tuple[str, ...], paths: tuple[str, ...],
    as_json: bool, no_catalog: bool,
) -> None:  # fmt: skip
    """Every version of PATH across all snapshots: when it appeared, changed and disappeared."""
    wanted = os.fsencode(os.path.normpath(os.path.join("/", path)))
    with app.open(lock=False, read_only=True, load_index=False) as repo:
        flt = make_filter(hosts, tags, paths)
        timeline = history_timeline(repo, wanted, flt, not no_catalog and app.catalog_enabled(), _notice)
    events = list(history_events(timeline))
    for e in events:
        if as_json:
            doc: dict[str, object] = {"event": e.event, "snapshot": e.snapshot_id, "time": e.snapshot_time}
            if e.hit is not None:
                doc.update(type=e.hit.kind, size=e.hit.size, mtime=e.hit.mtime_ns, sha256=e.hit.sha256.hex())
            emit_json(doc)
        elif e.hit is None:
            echo(f"{e.snapshot_time[:19]}  {e.snapshot_id[:8]}  {e.event}")
        else:
            digest = e.hit.sha256.hex()[:16] if e.hit.sha256 else "-"
            echo(
                f"{e.snapshot_time[:19]}  {e.snapshot_id[:8]}  {e.event:<11} {e.hit.kind:<7} "
                f"{human_bytes(e.hit.size):>10}  sha256 {digest}"
            )
    if not events and not as_json:
        raise UsageError(f"{show_path(wanted)} is in no selected snapshot")


def _mtime_text(path: os.PathLike[str]) -> str:
    newest = max(os.path.getmtime(f) for f in (f"{path}", f"{path}-wal") if os.path.exists(f))
    return dt.datetime.fromtimestamp(newest, dt.UTC).isoformat(timespec="seconds")


@click.group()
def catalog() -> None:
    """The local catalog that answers find and history (a cache; safe to drop)."""


@catalog.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@pass_app
def catalog_status(app: AppContext, as_json: bool) -> None:
    """Rows, versions, snapshots covered, size on disk and last sync."""
    with app.open(lock=False, load_index=False) as repo:
        path = store.catalog_path(repo.id)
        repo_snapshots = len(repo.snapshot_names())
        if not app.catalog_enabled():
            echo("the catalog is off (AMBER_CATALOG or [catalog] enabled = false)")
            return
        if not path.exists():
            echo(f"no catalog yet at {path}; `amber find` or `amber catalog rebuild` builds it")
            return
        conn, notice = store.open_catalog(repo.id)
    if notice:
        _notice(notice)
    try:
        figures = {
            "path": str(path),
            "versions": conn.execute("SELECT count(*) FROM ver").fetchone()[0],
            "names": conn.execute("SELECT count(*) FROM name").fetchone()[0],
            "directories": conn.execute("SELECT count(*) FROM dir").fetchone()[0],
            "snapshots_covered": conn.execute("SELECT count(*) FROM snap").fetchone()[0],
            "snapshots_in_repository": repo_snapshots,
            "bytes_on_disk": sum(os.path.getsize(f) for f in (f"{path}", f"{path}-wal") if os.path.exists(f)),
            "last_sync": _mtime_text(path),
        }
    finally:
        conn.close()
    if as_json:
        emit_json(figures)
        return
    for key, value in figures.items():
        shown = human_bytes(value) if key == "bytes_on_disk" and isinstance(value, int) else value
        echo(f"{key.replace('_', ' '):<24}{shown}")


@catalog.command("rebuild")
@pass_app
def catalog_rebuild(app: AppContext) -> None:
    """Drop the catalog and build it again from the repository's snapshots."""
    with app.open(lock=False, load_index=False) as repo:
        store.drop(repo.id)
        conn, _ = store.open_catalog(repo.id)
        try:
            result = sync(conn, repo)
        finally:
            conn.close()
    for sid, why in result.failed:
        echo(f"snapshot {sid[:8]} not indexed: {plain(why)}", err=True)
    echo(f"catalog rebuilt: {_plural(result.ingested, 'snapshot')} indexed")


@catalog.command("drop")
@pass_app
def catalog_drop(app: AppContext) -> None:
    """Delete the local catalog (searches walk the trees until it is built again)."""
    with app.open(lock=False, load_index=False) as repo:
        existed = store.drop(repo.id)
    echo("catalog deleted" if existed else "there was no catalog")


COMMANDS = [find, history, catalog]
