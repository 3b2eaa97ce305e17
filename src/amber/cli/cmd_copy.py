"""copy: snapshots to one or more other repositories."""

from __future__ import annotations

import sys
from typing import Any

import click

from amber.cli.context import AppContext, make_passwords, pass_app
from amber.cli.options import make_filter, snapshot_filter_options
from amber.cli.output import BarProgress, echo, emit_json, err_console, human_bytes, plain, showing
from amber.errors import AmberError, UsageError
from amber.memory import favour_throughput
from amber.ops.run import manual_copy
from amber.services import copy as copy_service
from amber.services import replicate as replicate_service


def _status_line(st: replicate_service.DestinationStatus) -> str:
    where = st.name if st.name == st.location else f"{st.name} ({st.location})"
    if st.status == replicate_service.OK:
        return (
            f"{where}: ok, copied {len(st.copied)} snapshot(s), {human_bytes(st.bytes_added)} new, "
            f"{st.already} already present"
        )
    return f"{where}: {st.status}: {st.error}"


def _as_json(st: replicate_service.DestinationStatus) -> dict[str, Any]:
    return {
        "destination": st.name, "location": st.location, "status": st.status,
        "copied": [{"source": s, "copy": d} for s, d in st.copied], "already": st.already,
        "bytes_added": st.bytes_added, "error": st.error, "seconds": round(st.seconds, 3),
    }  # fmt: skip


@click.command("copy")
@click.argument("snapshot_ids", nargs=-1)
@click.option("--from", "from_repo", metavar="REPO",
              help="Source: a location or a configured repository's name (default: -r).")  # fmt: skip
@click.option("--to", "to_repos", multiple=True, metavar="REPO",
              help="Destination: a location or a configured name; repeatable (default: -r).")  # fmt: skip
@click.option("--from-password-file", type=click.Path(dir_okay=False), help="Password file of the source.")
@click.option("--from-password-command", help="Command printing the source's password.")
@click.option("--to-password-file", type=click.Path(dir_okay=False), help="Password file of destinations.")
@click.option("--to-password-command", help="Command printing the destinations' password.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per destination.")
@snapshot_filter_options
@pass_app
def copy(
    app: AppContext, snapshot_ids: tuple[str, ...], from_repo: str | None, to_repos: tuple[str, ...],
    from_password_file: str | None, from_password_command: str | None, to_password_file: str | None,
    to_password_command: str | None, as_json: bool, hosts: tuple[str, ...], tags: tuple[str, ...],
    paths: tuple[str, ...],
) -> None:  # fmt: skip
    """Copy snapshots (default: all matching) that a destination lacks; only missing data moves.

    Source and destinations may use different passwords and keys. With several
    --to, each destination is reported; an unreachable one does not stop the rest.
    Each copy is recorded in the state database (for status --copies).
    REPO may name a [repositories.NAME] of the config file: it then opens with
    that repository's url, options, limits and password source (explicit
    --from-/--to-password-* win). A location equal to a configured url gets its
    options. An unknown name that is no path either exits 10.
    """
    if not from_repo and not to_repos:
        raise UsageError("copy needs --from or --to (the other side defaults to -r)")
    source = from_repo or app.target().name  # a configured name: manual_copy opens it as configured
    targets = list(to_repos) or [app.target().name]
    src_pw = app.passwords
    if from_password_file or from_password_command:
        src_pw = make_passwords(from_password_file, from_password_command)
    dst_pw = app.passwords
    if to_password_file or to_password_command:
        dst_pw = make_passwords(to_password_file, to_password_command)
    job = manual_copy.ManualCopy(
        source, targets, src_pw, dst_pw,
        copy_service.CopyRequest(list(snapshot_ids), make_filter(hosts, tags, paths)), app.config_path,
        source_passwords_given=bool(from_password_file or from_password_command),
        target_passwords_given=bool(to_password_file or to_password_command), context=app.operation,
    )  # fmt: skip
    favour_throughput()
    progress: Any = BarProgress("copy") if sys.stderr.isatty() and not as_json else None
    with showing(app.operation.events, progress):
        outcome = manual_copy.manual_copy(job)
    statuses = outcome.statuses
    if outcome.warning:
        err_console.print(f"[yellow]warning: {plain(outcome.warning)}[/]", highlight=False)
    for st in statuses:
        if as_json:
            emit_json(_as_json(st))
        elif st.ok:
            echo(_status_line(st))
        else:
            err_console.print(f"[red]{plain(_status_line(st))}[/]", highlight=False)
    bad = [st for st in statuses if not st.ok]
    if bad:
        raise AmberError(f"{len(bad)} of {len(statuses)} destination(s) not updated")


COMMANDS = [copy]
