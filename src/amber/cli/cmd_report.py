"""report: the daily report from the state database (weekly and monthly: not yet)."""

from __future__ import annotations

import time

import click

from amber.cli.context import AppContext, pass_app
from amber.ops.config.model import default_config_path, load_config
from amber.ops.private import write_private
from amber.ops.reports import daily as daily_report


@click.group("report")
def report() -> None:
    """Reports on what the configured jobs did."""


@report.command("daily")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False), help="Write the report here instead of stdout.")
@pass_app
def daily(app: AppContext, fmt: str, output: str | None) -> None:
    """The last 24 hours per job: runs, verification, copies, missed jobs; counts on the first line."""
    config = load_config(getattr(app, "config_path", None) or default_config_path())
    found = daily_report.daily(config, time.time())
    text = daily_report.render_json(found) if fmt == "json" else daily_report.render_text(found)
    if output:
        write_private(output, text.encode())
    else:
        click.echo(text, nl=False)


COMMANDS = [report]
