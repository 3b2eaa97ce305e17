"""status: every job's verdict (default), or --copies: the 3-2-1-1-0 view of every snapshot."""

from __future__ import annotations

from typing import Any

import click

from amber.cli import cmd_drill
from amber.cli.context import AppContext, pass_app
from amber.cli.options import make_filter, snapshot_filter_options
from amber.cli.output import echo, emit_json, err_console, plain, show_path
from amber.cli.status_board import show_board
from amber.engine.rule321 import Replica
from amber.errors import AmberError, CheckFailed, UsageError
from amber.ops import copies_status as service
from amber.ops.config.target import load_optional, state_path


def _main(app: AppContext) -> service.ReplicaSource:
    t = app.target()
    return service.ReplicaSource(Replica(t.name), t.location, t.passwords, t.options)


def _replicas(app: AppContext, specs: tuple[str, ...]) -> tuple[list[service.ReplicaSource], service.History]:
    """The repositories to compare, and the state database's record of copies and checks."""
    config, _problem = load_optional(app.config_path)
    history = service.StateHistory(state_path(config))
    if specs:
        replicas = [service.parse_replica(s, app.passwords) for s in specs]
        if app.repo:
            main = _main(app)
            if all(r.location != main.location for r in replicas):
                replicas.insert(0, main)
        return replicas, history
    if config is not None:
        replicas = service.replicas_from_config(config, app.passwords, app.operation.options)
    elif app.repo:
        replicas = [_main(app)]
    else:
        raise UsageError("status --copies needs --replica, a config file, or -r")
    return replicas + service.recorded_replicas(history, replicas, app.passwords), history


def _json(report: service.CopiesReport) -> dict[str, Any]:
    return {
        "passed": report.passed,
        "repositories": [r.__dict__ for r in report.replicas],
        "snapshots": [
            {
                "id": s.identity,
                "time": s.time,
                "hostname": s.hostname,
                "paths": s.paths,
                "copies": s.verdict.copies,
                "media": s.verdict.media,
                "offsite": s.verdict.offsite,
                "immutable_or_offline": s.verdict.immutable_or_offline,
                "errors": s.verdict.errors,
                "unverified": s.verdict.unverified,
                "passed": s.verdict.passed,
                "missing": s.verdict.missing,
                "holders": [{"repository": n, "snapshot": sid, "errors": e} for n, sid, e in s.holders],
            }
            for s in report.snapshots
        ],
    }


@click.command("status")
@click.option("--copies", is_flag=True, help="Show each snapshot's copies against the 3-2-1-1-0 rule.")
@click.option("--replica", "replicas", multiple=True,
              metavar="URL[,kind=K][,offsite][,immutable][,offline][,password_file=F|password_env=V]",
              help="A repository holding copies (repeat); default: the config's [repositories] and "
                   "the places `amber copy` recorded. Without a password key: the global "
                   "password.")  # fmt: skip
@click.option("--check", "run_check", is_flag=True, help="Run a structural check on every repository now.")
@click.option("--drills", is_flag=True, help="Restore drill success rate and the latest drills.")
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON object.")
@snapshot_filter_options
@pass_app
def status(
    app: AppContext, copies: bool, replicas: tuple[str, ...], run_check: bool, drills: bool,
    as_json: bool, hosts: tuple[str, ...], tags: tuple[str, ...], paths: tuple[str, ...],
) -> None:  # fmt: skip
    """Each configured job's verdict (protected, at-risk, unprotected) and why.

    Reads the state database only. Exits 1 when a job is unprotected.

    With --copies: where each snapshot has copies (count, media, offsite,
    immutable/offline, errors). Exits 18 when a snapshot fails the rule because of verification errors, 1
    when it fails for another reason (too few copies, media, places).
    """
    if drills:
        cmd_drill.show_history(app, as_json)
        if not copies:
            return
    if not copies:
        if replicas or run_check or hosts or tags or paths:
            raise UsageError("status: --replica, --check and the snapshot filters go with --copies")
        show_board(app.config_path, as_json)
        return
    sources, history = _replicas(app, replicas)
    report = service.copies_status(sources, run_check, history, make_filter(hosts, tags, paths))
    if as_json:
        emit_json(_json(report))
    else:
        for r in report.replicas:
            if r.status != service.REACHABLE:
                line = f"{plain(r.name)}: unreachable: {plain(r.error)}"
                err_console.print(f"[yellow]{line}[/]", highlight=False)
        for s in report.snapshots:
            v = s.verdict
            mark = "PASS" if v.passed else "FAIL"
            echo(
                f"{s.identity[:8]}  {show_path(s.time[:19])}  {show_path(s.hostname)}  {mark}  "
                f"copies {v.copies}, "
                f"media {len(v.media)} ({', '.join(v.media) or '-'}), offsite {v.offsite}, "
                f"immutable/offline {v.immutable_or_offline}, errors {v.errors}"
                + (f", unverified {v.unverified}" if v.unverified else "")
            )
            echo(f"          in: {', '.join(n for n, _, _ in s.holders) or '-'}")
            if v.missing:
                echo(f"          missing: {'; '.join(v.missing)}")
        if not report.snapshots:
            echo("no snapshots found")
    if not report.passed:
        failing = [s for s in report.snapshots if not s.verdict.passed]
        if any(s.verdict.errors for s in failing):
            raise CheckFailed(f"{len(failing)} snapshot(s) fail 3-2-1-1-0; some copies have errors")
        raise AmberError(f"{len(failing)} snapshot(s) fail 3-2-1-1-0" if failing else "no snapshots found")


COMMANDS = [status]
