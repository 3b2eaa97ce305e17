"""watch: continuous protection of a job's files."""

from __future__ import annotations

import click

from amber.cli.context import AppContext, pass_app
from amber.cli.options import limit_options
from amber.cli.output import err_console, plain
from amber.ops import limits as limits_service
from amber.ops.run import job as run_service
from amber.ops.watch import loop as watch_service
from amber.redact import redact


@click.command()
@click.argument("job")
@limit_options
@click.option("--no-check", is_flag=True, help="Skip the sampled check after each snapshot.")
@pass_app
def watch(
    app: AppContext, job: str, nice: int | None, ionice_class: str | None, ionice_level: int | None,
    threads: int | None, memory_cap: str | None, no_check: bool,
) -> None:  # fmt: skip
    """Snapshot JOB's paths within watch_interval of every change (stop with SIGTERM or Ctrl-C).

    A full walk at start, after lost events and every watch_rescan; in between only the
    changed paths are read. Each snapshot is a run of the job: mirrors, retention, alerts.
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

    def note(msg: str) -> None:
        err_console.print(plain(redact(msg)), highlight=False)

    app.operation.events.subscribe(run_service.standard_observer(cfg, note))  # alerts for every run
    options = watch_service.WatchOptions(run=run_service.RunOptions(
        limits=limits, passwords=app.passwords, check=not no_check, context=app.operation,
    ))  # fmt: skip
    watch_service.watch_job(cfg, job, options)


COMMANDS = [watch]
