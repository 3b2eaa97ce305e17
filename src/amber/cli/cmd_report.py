"""report: daily, weekly and monthly reports from the state database."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

from amber.cli.context import AppContext, pass_app
from amber.ops.private import write_private
from amber.ops.reports import daily as daily_report
from amber.ops.reports import monthly as monthly_report
from amber.ops.reports import weekly as weekly_report

F = TypeVar("F", bound=Callable[..., Any])


def report_options(f: F) -> F:
    """--format and --output, the same for every report."""
    f = click.option("--output", type=click.Path(dir_okay=False),
                     help="Write the report here instead of stdout.")(f)  # fmt: skip
    return click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                        show_default=True, help="Plain text or JSON.")(f)  # fmt: skip


@click.group("report")
def report() -> None:
    """Reports on what the configured jobs did."""


@report.command("daily")
@report_options
@pass_app
def daily(app: AppContext, fmt: str, output: str | None) -> None:
    """The last 24 hours per job: runs, verification, copies, missed jobs; counts on the first line."""
    found = daily_report.daily(app.config(), time.time())
    _emit(daily_report.render_json(found) if fmt == "json" else daily_report.render_text(found), output)


@report.command("weekly")
@report_options
@pass_app
def weekly(app: AppContext, fmt: str, output: str | None) -> None:
    """Seven days per job against the seven before: success rate, size, durations, error patterns."""
    found = weekly_report.weekly(app.config(), time.time())
    _emit(weekly_report.render_json(found) if fmt == "json" else weekly_report.render_text(found), output)


@report.command("monthly")
@report_options
@pass_app
def monthly(app: AppContext, fmt: str, output: str | None) -> None:
    """30 days: growth and capacity forecast, daily coverage, durations, recommendations."""
    found = monthly_report.monthly(app.config(), time.time())
    _emit(monthly_report.render_json(found) if fmt == "json" else monthly_report.render_text(found), output)


def _emit(text: str, output: str | None) -> None:
    if output:
        write_private(output, text.encode())
    else:
        click.echo(text, nl=False)


COMMANDS = [report]
