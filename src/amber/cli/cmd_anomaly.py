"""anomaly list|show|ack: snapshots the ransomware check tagged suspicious."""

from __future__ import annotations

import time

import click
import msgspec

from amber.cli.context import AppContext, pass_app
from amber.cli.output import echo, emit_json, show_path
from amber.engine.retention_hold import ACKED_TAG
from amber.ops.anomaly_acks import AckLog
from amber.ops.config.target import load_optional, state_path
from amber.repository import Snapshot
from amber.services import acknowledge as ack_service
from amber.services.snapshots import resolve


def _state(snap: Snapshot) -> str:
    return "acknowledged" if ACKED_TAG in snap.tags else "holding retention"


@click.group()
def anomaly() -> None:
    """Snapshots whose changes looked like ransomware (tagged suspicious)."""


@anomaly.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def list_(app: AppContext, as_json: bool) -> None:
    """List suspicious snapshots, oldest first."""
    with app.open(lock=False, read_only=True, load_index=False) as repo:
        found = ack_service.suspicious(repo)
    if as_json:
        emit_json(
            [
                {
                    "id": sid,
                    "time": s.time,
                    "hostname": s.hostname,
                    "paths": s.paths,
                    "state": _state(s),
                    "reasons": s.summary.anomaly.reasons if s.summary.anomaly else [],
                }
                for sid, s in found
            ]
        )
        return
    for sid, s in found:
        reasons = "; ".join(s.summary.anomaly.reasons) if s.summary.anomaly else ""
        echo(f"{sid[:8]}  {s.time[:19]}  {show_path(s.hostname)}  {_state(s)}  {show_path(reasons)}")
    echo(f"{len(found)} suspicious snapshot{'s' if len(found) != 1 else ''}")


@anomaly.command()
@click.argument("snapshot")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def show(app: AppContext, snapshot: str, as_json: bool) -> None:
    """The anomaly check's verdict and evidence for SNAPSHOT."""
    with app.open(lock=False, read_only=True, load_index=False) as repo:
        sid, snap = resolve(repo, snapshot)
    a = snap.summary.anomaly
    if as_json:
        emit_json({"id": sid, "tags": snap.tags, "anomaly": msgspec.to_builtins(a) if a else None})
        return
    tags = ",".join(snap.tags) or "-"
    echo(f"snapshot {sid[:8]} ({snap.time[:19]}, {show_path(snap.hostname)}, tags {tags})")
    if a is None:
        echo("not assessed (no parent snapshot, or written by an amber without the check)")
        return
    echo(f"verdict: {a.verdict}" + (f" ({_state(snap)})" if a.verdict == "suspicious" else ""))
    for reason in a.reasons:
        echo(f"  reason: {show_path(reason)}")
    echo("  " + ", ".join(f"{k} {v}" for k, v in a.counts.items()))
    for line in a.new_extensions:
        echo(f"  new extension: {show_path(line)}")
    for line in a.top_dirs:
        echo(f"  directory: {show_path(line)}")
    for line in a.examples:
        echo(f"  example: {show_path(line)}")


@anomaly.command()
@click.argument("snapshot")
@pass_app
def ack(app: AppContext, snapshot: str) -> None:
    """Acknowledge suspicious SNAPSHOT: retention no longer holds the clean snapshots before it."""
    with app.open(lock=False) as repo:
        done = ack_service.acknowledge(repo, snapshot)
    config, _problem = load_optional(app.config_path)
    AckLog(state_path(config)).record(done.old_id, done.new_id, time.time())  # the verdict drops its reason
    if done.old_id == done.new_id:
        echo(f"snapshot {done.old_id[:8]} was already acknowledged")
    else:
        echo(f"acknowledged snapshot {done.old_id[:8]}; it is now {done.new_id[:8]} (tag {ACKED_TAG})")


COMMANDS = [anomaly]
