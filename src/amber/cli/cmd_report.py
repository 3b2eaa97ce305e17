"""report: daily, weekly and monthly reports from the state database; written, printed or sent."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

from amber.cli.context import AppContext, pass_app
from amber.errors import NotifyFailed, UsageError
from amber.ops.private import write_private

F = TypeVar("F", bound=Callable[..., Any])
FORMATS = ("text", "html", "json", "pdf")


def report_options(f: F) -> F:
    """--format, --output, --send, --pdf and --scheduled, the same for every report."""
    f = click.option("--scheduled", is_flag=True,
                     help="Send the [reports.KIND] report of its latest scheduled period, once per period "
                          "(what the daemon and the systemd timer run).")(f)  # fmt: skip
    f = click.option("--pdf", "attach_pdf", is_flag=True, help="With --send: attach the PDF (amber[pdf]).")(f)
    f = click.option("--send", is_flag=True,
                     help="Mail it (text and HTML) to the [reports.KIND] targets, or to the [[notify]] "
                          "targets whose events include 'summary'.")(f)  # fmt: skip
    f = click.option("--output", type=click.Path(dir_okay=False),
                     help="Write the report here instead of stdout (mode 0600).")(f)  # fmt: skip
    return click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
                        help="Plain text, self-contained HTML, JSON, or PDF (needs amber[pdf]; exit 43 "
                             "without it).")(f)  # fmt: skip


@click.group("report")
def report() -> None:
    """Reports on what the configured jobs did, and whether each is protected now."""


@report.command("daily")
@report_options
@pass_app
def daily(app: AppContext, **options: Any) -> None:
    """The last 24 hours per job: runs, bytes, verification, copies, missed jobs; protection now."""
    _report(app, "daily", **options)


@report.command("weekly")
@report_options
@pass_app
def weekly(app: AppContext, **options: Any) -> None:
    """Seven days per job against the seven before: success rate, size, durations, error patterns."""
    _report(app, "weekly", **options)


@report.command("monthly")
@report_options
@pass_app
def monthly(app: AppContext, **options: Any) -> None:
    """30 days: growth and capacity forecast, coverage, durations, anomalies, recommendations."""
    _report(app, "monthly", **options)


def _report(app: AppContext, kind: str, fmt: str, output: str | None, send: bool, attach_pdf: bool,
            scheduled: bool) -> None:  # fmt: skip
    from amber.ops.reports import render
    from amber.ops.reports import send as sender

    config = app.config()
    if scheduled:
        outcome = sender.send_scheduled(config, kind)
        _notes([f"{d.target}: {d.outcome}" + (f" ({d.error})" if d.error else "")
                for d in outcome.deliveries])  # fmt: skip
        if outcome.status == "failed":
            raise NotifyFailed(f"the {kind} report for {outcome.period} could not be delivered")
        said = {"idle": f"no {kind} report due", "already-sent": f"{kind} report for {outcome.period} was "
                "already sent", "sent": f"sent the {kind} report for {outcome.period}"}  # fmt: skip
        click.echo(said[outcome.status])
        return
    doc = sender.build(kind, config, time.time())
    if fmt == "json":
        import json

        body: bytes = (json.dumps(doc.data, indent=2) + "\n").encode()
    elif fmt == "html":
        body = render.html(doc).encode()
    elif fmt == "pdf":
        body = render.pdf(doc)
        if output is None and sys.stdout.isatty():
            raise UsageError("--format pdf writes binary: give --output FILE or redirect stdout")
    else:
        body = render.text(doc).encode()
    if send:
        results = sender.send_now(config, doc, pdf=attach_pdf or fmt == "pdf" or None)
        _notes([f"sent the {kind} report to {d.target}" if d.outcome == "sent"
                     else f"{d.target}: {d.error}" for d in results])  # fmt: skip
        if output is None:
            return  # sent: nothing printed unless asked for a file
    if output:
        write_private(output, body)
    else:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()


def _notes(lines: list[str]) -> None:
    for line in lines:
        click.echo(line, err=True)


COMMANDS = [report]
