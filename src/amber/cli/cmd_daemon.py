"""daemon: the built-in scheduler."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

import click

from amber.cli.context import AppContext, pass_app
from amber.cli.options import limit_options
from amber.cli.output import echo, err_console, plain
from amber.ops import limits as limits_service
from amber.ops.run import job as run_service
from amber.ops.schedule import daemon as daemon_service
from amber.ops.watch.daemon import WatchExtension
from amber.redact import redact
from amber.services.session import PasswordSource


@click.command()
@limit_options
@click.option("--tick", type=click.FloatRange(0.1), default=30.0, show_default=True,
              help="Seconds between looks at the schedule.")  # fmt: skip
@click.option("--once", is_flag=True, help="Run what is due (including missed runs) once, then exit.")
@pass_app
def daemon(
    app: AppContext, nice: int | None, ionice_class: str | None, ionice_level: int | None,
    threads: int | None, memory_cap: str | None, tick: float, once: bool,
) -> None:  # fmt: skip
    """Run scheduled jobs without systemd (stop with SIGTERM or Ctrl-C).

    Stopped between jobs it exits 0; a signal that interrupted a running job exits
    with that signal's code (143 for SIGTERM), as `amber run` does.
    """
    cfg = app.config()
    limits = limits_service.with_options(
        limits_service.Limits.from_config(limits_service.scheduled(cfg.limits)),
        nice,
        ionice_class,
        ionice_level,
        threads,
        memory_cap,
    )
    stop = threading.Event()
    app.operation.cancel.watch()  # the loop looks at `stop` between ticks: a signal never kills it mid-job
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}

    def on_signal(sig: int, frame: FrameType | None) -> None:
        stop.set()  # no new job starts; the running one stops at its next safe point
        handler = previous[signal.Signals(sig)]
        if callable(handler):
            handler(sig, frame)  # cli.signals: cancels this operation (a second signal: at once)

    for sig in previous:
        signal.signal(sig, on_signal)

    def note(msg: str) -> None:
        err_console.print(plain(redact(msg)), highlight=False)

    app.operation.events.subscribe(run_service.standard_observer(cfg, note))  # every job's run events
    run = run_service.RunOptions(limits=limits, passwords=app.passwords, context=app.operation)
    watchers = [] if once else [WatchExtension(run)]  # jobs with watch = true
    options = daemon_service.DaemonOptions(
        run=run, tick=tick, once=once, stop=stop, extensions=[*_extensions(note, app.passwords), *watchers],
    )  # fmt: skip
    scheduled = [j.name for j in cfg.jobs.values() if j.schedule]
    note(f"daemon: {len(scheduled)} scheduled job(s): {', '.join(scheduled) or 'none'}")
    results = daemon_service.serve(cfg, options)
    for r in results:
        echo(f"{r.job}: {r.status}")
    stopped = run_service.interrupted_error(results)
    if stopped is not None:
        raise stopped


def _extensions(
    note: Callable[[str], None], passwords: PasswordSource
) -> list[daemon_service.DaemonExtension]:
    """The dashboard (and /metrics) on [web] listen, the older /metrics on [metrics] listen (and the
    textfile), stale-job and capacity alerts every minute, restore drills on each job's
    drill.schedule, checks on each job's check.schedule, and the [reports.KIND] reports, each
    period once."""
    from amber.ops.alerting.notify import AlertObserver, AlertsExtension
    from amber.ops.drills.drill import DrillExtension
    from amber.ops.metrics import MetricsExtension  # prometheus_client: only for the daemon
    from amber.ops.reports.send import ReportsExtension
    from amber.ops.run.scheduled_check import CheckExtension
    from amber.web.daemon import WebExtension

    alerts = AlertsExtension(lambda m: note(m) if m else None)
    checks = CheckExtension(passwords, note, lambda cfg: AlertObserver(cfg, lambda m: note(m) if m else None))
    drills = DrillExtension(passwords, note)
    return [WebExtension(passwords, note), MetricsExtension(), alerts, drills, checks, ReportsExtension(note)]


COMMANDS = [daemon]
