"""forget: remove snapshots by policy (--keep-*) or by ID."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from amber.anomaly.scoring import Thresholds
from amber.cli.context import AppContext, pass_app
from amber.cli.options import make_filter, snapshot_filter_options
from amber.cli.output import echo, emit_json_text, err_console, human_bytes, plain, show_path
from amber.engine.retention import Duration, GroupKey, Policy, SnapshotRecord, parse_duration, parse_group_by
from amber.errors import ConfigError
from amber.ops.config.model import default_config_path
from amber.services import forget as forget_service
from amber.services.prune import PruneOptions

_COUNTS = [("last", "-l"), ("hourly", "-H"), ("daily", "-d"),
           ("weekly", "-w"), ("monthly", "-m"), ("yearly", "-y")]  # fmt: skip
_WITHIN = ["", "hourly", "daily", "weekly", "monthly", "yearly"]
_PERIOD = {"hourly": "hour", "daily": "day", "weekly": "ISO week", "monthly": "month", "yearly": "year"}


def _policy_options(f: Any) -> Any:
    for name in reversed(_WITHIN):
        flag = f"--keep-within-{name}" if name else "--keep-within"
        what = f"the newest snapshot of each {_PERIOD[name]}" if name else "all snapshots"
        f = click.option(flag, metavar="DURATION", help=f"Keep {what} within DURATION (e.g. 1y2m3d4h) "
                         "of the newest snapshot.")(f)  # fmt: skip
    for name, short in reversed(_COUNTS):
        what = (f"the newest snapshot of each of the last N {_PERIOD[name]}s that have one"
                if name != "last" else "the N newest snapshots")  # fmt: skip
        f = click.option(f"--keep-{name}", short, type=int, default=0, metavar="N",
                         help=f"Keep {what} (-1: all).")(f)  # fmt: skip
    return click.option("--keep-tag", multiple=True, metavar="TAGS",
                        help="Keep snapshots with these tags (a,b = both).")(f)  # fmt: skip


def _duration(text: str | None) -> Duration:
    return parse_duration(text) if text else Duration()


def _policy(opts: dict[str, Any]) -> Policy:
    fields: dict[str, Any] = {f"keep_{name}": opts[f"keep_{name}"] for name, _ in _COUNTS}
    for name in _WITHIN:
        key = "keep_within" + (f"_{name}" if name else "")
        fields[key] = _duration(opts[key])
    return Policy(**fields, keep_tags=tuple(opts["keep_tag"]))


def _describe_group(key: GroupKey) -> str:
    parts = []
    if key.hostname is not None:
        parts.append(f"host {key.hostname}")
    if key.paths is not None:
        parts.append(f"paths {', '.join(key.paths)}")
    if key.tags is not None:
        parts.append(f"tags {','.join(key.tags) or '(none)'}")
    return show_path("snapshots for " + ("; ".join(parts) or "all snapshots"))


def _row(snap: SnapshotRecord, reasons: list[str]) -> str:
    return (f"{snap.id[:8]:<10}{snap.time.strftime('%Y-%m-%d %H:%M:%S %z'):<27}{show_path(snap.hostname):<16}"
            f"{show_path(','.join(snap.tags)):<12}{', '.join(reasons)}")  # fmt: skip


def _print_table(title: str, snaps: list[SnapshotRecord], reasons: dict[str, list[str]] | None) -> None:
    echo(f"{title} {len(snaps)} snapshot{'s' if len(snaps) != 1 else ''}:")
    if snaps:
        last = "Reasons" if reasons is not None else ""
        echo(f"{'ID':<10}{'Time':<27}{'Host':<16}{'Tags':<12}{last}".rstrip())
        for snap in snaps:
            echo(_row(snap, (reasons or {}).get(snap.id, [])).rstrip())


def _snap_json(snap: SnapshotRecord) -> dict[str, Any]:
    return {"id": snap.id, "short_id": snap.id[:8], "time": snap.time.isoformat(),
            "hostname": snap.hostname, "paths": list(snap.paths), "tags": list(snap.tags)}  # fmt: skip


def _json(result: forget_service.ForgetResult) -> str:
    out: list[dict[str, Any]] = []
    for g in result.groups:
        out.append({
            "host": g.key.hostname, "paths": g.key.paths, "tags": g.key.tags,
            "keep": [_snap_json(s) for s in g.keep], "remove": [_snap_json(s) for s in g.remove],
            "reasons": [{"snapshot": _snap_json(s), "matches": g.reasons[s.id]} for s in g.keep],
            "held": [s.id for s in g.keep if s.id in result.held],
        })  # fmt: skip
    if result.explicit:
        out.append({"host": None, "paths": None, "tags": None, "keep": [], "reasons": [],
                    "remove": [_snap_json(s) for s in result.explicit]})  # fmt: skip
    return json.dumps(out, indent=2, ensure_ascii=False)


@click.command()
@click.argument("snapshot_ids", nargs=-1)
@_policy_options
@click.option("--group-by", default="host,paths", show_default=True, help="Group by host, paths and/or tags.")
@snapshot_filter_options
@click.option("-n", "--dry-run", is_flag=True, help="Only show what would be removed.")
@click.option("--json", "as_json", is_flag=True, help="Print the groups as JSON.")
@click.option("--prune", "run_prune", is_flag=True, help="Run prune afterwards to reclaim the space.")
@click.option("--max-unused", default="5%", show_default=True, metavar="PCT|SIZE|unlimited",
              help="With --prune: unused space to tolerate in partly used packs.")  # fmt: skip
@pass_app
def forget(
    app: AppContext, /, snapshot_ids: tuple[str, ...], group_by: str, hosts: tuple[str, ...],
    tags: tuple[str, ...], paths: tuple[str, ...], dry_run: bool, as_json: bool, run_prune: bool,
    max_unused: str, **opts: Any,
) -> None:  # fmt: skip
    """Remove snapshots by a --keep-* policy, or the SNAPSHOT_IDS given.

    Only the snapshot files go; prune reclaims the data they used.
    """
    flt = make_filter(hosts, tags, paths)
    groups = parse_group_by(group_by)
    prune = PruneOptions(max_unused=max_unused) if run_prune and not dry_run else None
    req = forget_service.ForgetRequest(_policy(opts), groups, flt, list(snapshot_ids), dry_run, prune,
                                       hold_clean=_hold_clean(app))  # fmt: skip
    with app.open(lock=False) as repo:  # the service takes the lock
        result = forget_service.forget(repo, req)
    for sid, exc in result.damaged:
        err_console.print(f"[yellow]warning:[/] snapshot {plain(sid[:8])} is unreadable and was left alone: "
                          f"{plain(str(exc))}", highlight=False)  # fmt: skip
    if as_json:
        emit_json_text(_json(result))
        return
    _print_result(result, run_prune)


def _hold_clean(app: AppContext) -> int:
    """``[anomaly] hold_clean`` from the config file when there is one."""
    if os.path.exists(app.config_path or default_config_path()):
        try:
            return app.config().anomaly.hold_clean
        except ConfigError as exc:  # a broken config must not stop a backup or a forget
            err_console.print(f"[yellow]warning:[/] {plain(exc.message)}; default [anomaly] thresholds used",
                              highlight=False)  # fmt: skip
    return Thresholds().hold_clean


def _print_result(result: forget_service.ForgetResult, run_prune: bool) -> None:
    for g in result.groups:
        echo(_describe_group(g.key))
        _print_table("keep", g.keep, g.reasons)
        _print_table("remove", g.remove, None)
        echo()
    if result.explicit:
        _print_table("remove", result.explicit, None)
    if not result.groups:  # by ID: say which of the named ones the hold keeps
        for sid, why in result.held.items():
            echo(f"kept {sid[:8]}: {why}")
    n = len(result.to_remove)
    if result.dry_run:
        echo(f"dry run: would remove {n} snapshot{'s' if n != 1 else ''}"
                   + ("; prune skipped" if run_prune else ""))  # fmt: skip
    else:
        echo(f"removed {len(result.removed)} snapshot{'s' if len(result.removed) != 1 else ''}"
                   + (f" ({len(result.vanished)} already gone)" if result.vanished else ""))  # fmt: skip
    if result.pruned is not None:
        r = result.pruned
        pending = f", {r.pending_packs} packs pending" if r.pending_packs else ""
        echo(f"prune: removed {r.deleted_packs} packs, {human_bytes(r.deleted_bytes)} freed{pending}")


COMMANDS = [forget]
