"""notify test, alerts check."""

from __future__ import annotations

import click

from amber.cli.context import AppContext, pass_app
from amber.cli.output import echo, emit_json
from amber.errors import NotifyFailed
from amber.ops.alerting import notify as notify_service


@click.group()
def notify() -> None:
    """Notification targets ([[notify]] in the config file)."""


@notify.command("test")
@click.option("--target", type=click.IntRange(min=1), help="Only target N (1-based, in config order).")
@pass_app
def notify_test(app: AppContext, target: int | None) -> None:
    """Send a test message to every configured target."""
    results = notify_service.notifier_for(app.config()).test(target)
    for d in results:
        echo(f"{d.target}: {d.outcome}" + (f" ({d.error})" if d.error else ""))
    failed = [d for d in results if d.outcome == "failed"]
    if failed:
        raise NotifyFailed(f"{len(failed)} of {len(results)} notification(s) failed: {failed[0].error}")


@click.group()
def alerts() -> None:
    """Alerts that need no backup run: stale jobs (dead man's switch) and full destinations."""


@alerts.command("check")
@click.option("--json", "as_json", is_flag=True, help="A JSON array of the alerts and their deliveries.")
@pass_app
def alerts_check(app: AppContext, as_json: bool) -> None:
    """Evaluate stale jobs and destination capacity now, and notify (deduplicated)."""
    found = notify_service.check_alerts(app.config())
    if as_json:
        emit_json([{"kind": e.kind, "job": e.job, "repository": e.repository, "message": e.message,
                    "deliveries": [d.__dict__ for d in ds]} for e, ds in found])  # fmt: skip
        _raise_if_undelivered([d for _, ds in found for d in ds])
        return
    for event, deliveries in found:
        sent = ", ".join(f"{d.outcome}" for d in deliveries) or "no target wants it"
        echo(f"{event.kind}: {event.message} [{sent}]")
    if not found:
        echo("no alerts")
    _raise_if_undelivered([d for _, ds in found for d in ds])


def _raise_if_undelivered(deliveries: list[notify_service.Delivery]) -> None:
    failed = [d for d in deliveries if d.outcome == "failed"]
    if failed:
        first = failed[0]
        raise NotifyFailed(f"{len(failed)} alert(s) could not be delivered: {first.target}: {first.error}")


COMMANDS = [notify, alerts]
