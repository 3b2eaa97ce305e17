"""run: the configured jobs."""

from __future__ import annotations

import click

from amber.cli.context import AppContext, pass_app
from amber.cli.options import limit_options
from amber.cli.output import echo, emit_json, err_console, human_bytes, plain, quantity
from amber.errors import CheckFailed
from amber.ops import limits as limits_service
from amber.ops.config.model import Config
from amber.ops.run import job as run_service
from amber.ops.run import scheduled_check
from amber.redact import redact


@click.command()
@click.argument("jobs", nargs=-1)
@limit_options
@click.option("--no-check", is_flag=True, help="Skip the sampled check after the backup.")
@click.option(
    "--check-only",
    is_flag=True,
    help="Only check the jobs' repositories (what a job's check.schedule timer runs).",
)
@click.option("--json", "as_json", is_flag=True, help="Print each run record as a JSON line.")
@pass_app
def run(
    app: AppContext, jobs: tuple[str, ...], nice: int | None, ionice_class: str | None,
    ionice_level: int | None, threads: int | None, memory_cap: str | None, no_check: bool, check_only: bool,
    as_json: bool,
) -> None:  # fmt: skip
    """Run JOBS from the config file (all jobs when none is named)."""
    cfg = app.config()
    limits = limits_service.with_options(
        limits_service.Limits.from_config(cfg.limits), nice, ionice_class, ionice_level, threads, memory_cap
    )

    def note(msg: str) -> None:
        err_console.print(plain(redact(msg)), highlight=False)

    app.operation.events.subscribe(run_service.standard_observer(cfg, note))  # every job's run events
    options = run_service.RunOptions(
        limits=limits, passwords=app.passwords, check=not no_check, context=app.operation
    )  # each job's lines: "note" notices (cli/main.py)
    if check_only:
        _check_only(cfg, list(jobs), options, as_json)
        return
    results = run_service.run_jobs(cfg, list(jobs), options)
    for result in results:
        record = result.record
        if as_json:
            emit_json(record.as_dict() if record else {"job": result.job, "status": result.status})
        elif record is None:
            echo(f"{result.job}: not started (already running)")
        elif record.status == "interrupted":
            echo(f"{result.job}: interrupted; what was stored is kept for the next run")
        else:
            snap = f" snapshot {record.snapshot_ids[0][:8]}" if record.snapshot_ids else ""
            echo(f"{result.job}: {record.status}{snap}, {quantity(record.files, 'file')}, "
                       f"{human_bytes(record.bytes_added)} added, {record.duration:.1f}s")  # fmt: skip
            for warning in (n for d in record.destinations for n in d.details.get("notes", [])):
                note(f"{result.job}: note: {warning}")  # e.g. tables a database dump cannot make consistent
    error = run_service.worst_error(results)
    if error is not None:
        raise error


def _check_only(cfg: Config, jobs: list[str], options: run_service.RunOptions, as_json: bool) -> None:
    records = scheduled_check.check_jobs(cfg, jobs, options.passwords, options.context)
    for record in records:
        if as_json:
            emit_json(record.as_dict())
        else:
            echo(redact(f"{record.job}: {record.status}" + "".join(f"; {e}" for e in record.errors)))
    failed = [r for r in records if r.status != "success"]
    if failed:
        raise CheckFailed(f"scheduled check failed for {', '.join(r.job for r in failed)}")


COMMANDS = [run]
