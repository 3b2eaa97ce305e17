"""``amber object-lock extend``: push S3 Object Lock retention on data still in use."""

from __future__ import annotations

import click

from amber.cli.context import AppContext, pass_app
from amber.cli.output import echo
from amber.services import object_lock


@click.group("object-lock")
def object_lock_group() -> None:
    """S3 Object Lock: keep data that snapshots still use immutable."""


@object_lock_group.command("extend")
@click.option("--days", type=int, default=None, help="Retention from now (default: -o s3.lock-days).")
@pass_app
def extend(app: AppContext, days: int | None) -> None:
    """Extend retention of config, keys, snapshots, index and every referenced pack."""
    with app.open() as repo:
        result = object_lock.extend_retention(repo, days)
    echo(
        f"retention until {result.until:%Y-%m-%d %H:%M} UTC: {result.extended} of {result.objects} "
        f"objects extended ({result.packs} referenced packs)"
    )


COMMANDS = [object_lock_group]
