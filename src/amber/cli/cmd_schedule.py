"""schedule install | status | remove."""

from __future__ import annotations

import click

from amber.cli.context import AppContext, pass_app
from amber.cli.output import echo, err_console, plain
from amber.errors import AmberError, ScheduleNotEnabled
from amber.ops.schedule import timers as schedule_service


@click.group()
def schedule() -> None:
    """Run the configured jobs from systemd timers."""


def _scope(f: click.decorators.FC) -> click.decorators.FC:
    f = click.option("--unit-dir", type=click.Path(file_okay=False), help="Write units here instead.")(f)
    # one boolean pair: two flag_value options sharing a name made click 8.2+ default to --system
    return click.option(
        "--system/--user",
        "system",
        default=False,
        help="System units (/etc/systemd/system) or user units (the default).",
    )(f)


@schedule.command("install")
@_scope
@click.option("--dry-run", is_flag=True, help="Print the units instead of writing them.")
@pass_app
def install(app: AppContext, system: bool, unit_dir: str | None, dry_run: bool) -> None:
    """Write and enable a service and a timer for every job with a schedule."""
    result = schedule_service.install(app.config(), system, dry_run, unit_dir, enable=unit_dir is None)
    if dry_run:
        for unit in result.units:
            echo(f"# {result.directory}/{unit.name}\n{unit.text}")
        for name in result.removed:
            echo(f"# would remove {result.directory}/{name}")
        return
    for name in result.written:
        echo(f"wrote {result.directory}/{name}")
    for name in result.removed:
        echo(f"removed {result.directory}/{name}")
    for message in result.systemctl:
        err_console.print(f"[yellow]note:[/] {plain(message)}", highlight=False)
    if result.not_enabled:
        raise ScheduleNotEnabled(
            f"units written to {result.directory} ({', '.join(result.written)}) but not enabled: "
            f"{', '.join(result.not_enabled)}; run `systemctl {'' if system else '--user '}daemon-reload` "
            "and `enable --now` them by hand, or use `amber daemon`"
        )


@schedule.command("status")
@_scope
@pass_app
def status(app: AppContext, system: bool, unit_dir: str | None) -> None:
    """Show the installed timers, their next run and the last result."""
    try:
        cfg = app.config()
    except AmberError:
        cfg = None  # the units are still worth showing
    rows = schedule_service.status(cfg, system, unit_dir, use_systemctl=unit_dir is None)
    if not rows:
        echo("no amber timers installed")
        return
    for r in rows:
        nxt = r.next_run.strftime("%Y-%m-%d %H:%M:%S") if r.next_run else "-"
        last = f"{r.last_status} at {r.last_started:%Y-%m-%d %H:%M}" if r.last_started else r.last_status
        echo(f"{r.unit}: job {r.job or '?'}, {r.schedule}, next {nxt}, last {last}, {r.active}")


@schedule.command("remove")
@_scope
@pass_app
def remove(app: AppContext, system: bool, unit_dir: str | None) -> None:
    """Disable and delete the units `schedule install` wrote."""
    result = schedule_service.remove(system, unit_dir, use_systemctl=unit_dir is None)
    for name in result.removed:
        echo(f"removed {result.directory}/{name}")
    if not result.removed:
        echo("no amber units found")


COMMANDS = [schedule]
