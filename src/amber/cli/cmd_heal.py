"""repair packs --from OTHER: heal missing or damaged blobs from a replica.

The command joins the ``repair`` group, which cmd_repair assembles.
"""

from __future__ import annotations

import click

from amber.cli.context import AppContext, make_passwords, pass_app
from amber.cli.output import echo, err_console, plain
from amber.errors import IntegrityError
from amber.ops.config.target import load_optional, resolve
from amber.services import heal as heal_service


@click.command("packs")
@click.option("--from", "from_repo", required=True, metavar="REPO", help="Replica with copies of the data.")
@click.option("--from-password-file", type=click.Path(dir_okay=False), help="Password file of the replica.")
@click.option("--from-password-command", help="Command printing the replica's password.")
@click.option("--read-data", is_flag=True, help="Also read every pack here to find damaged blobs.")
@pass_app
def packs(
    app: AppContext, from_repo: str, from_password_file: str | None, from_password_command: str | None,
    read_data: bool,
) -> None:  # fmt: skip
    """Re-create missing or damaged blobs here from a replica's copies of the same snapshots."""
    heal(app, from_repo, from_password_file, from_password_command, read_data)


def heal(
    app: AppContext, from_repo: str, from_password_file: str | None, from_password_command: str | None,
    read_data: bool,
) -> None:  # fmt: skip
    """``repair packs --from`` and its alias ``repair --from`` (a path, URL or configured name)."""
    here = app.target()
    given = bool(from_password_file or from_password_command)
    replica_pw = make_passwords(from_password_file, from_password_command) if given else app.passwords
    config, problem = load_optional(app.config_path)
    replica = resolve(from_repo, config, replica_pw, given or app.passwords_given, problem=problem)
    r = heal_service.heal_from(here.location, here.passwords, replica.location, replica.passwords, read_data,
                               app.operation)  # fmt: skip
    if not r.bad_blobs:
        if read_data:
            echo("no missing or damaged blobs found: every pack is present and every blob verified")
        else:
            echo("no missing or truncated packs found; pack contents were NOT read, so damage inside a "
                 "pack (what `check --read-data` reports) is not covered: run with --read-data")  # fmt: skip
        return
    if not read_data:
        echo("examined: missing and truncated packs only (pack contents not read; --read-data reads them)")
    for sid, why in r.unhealed_snapshots:
        err_console.print(f"[red]error:[/] snapshot {plain(sid[:8])}: {plain(why)}", highlight=False)
    echo(
        f"{len(r.bad_packs)} bad pack(s), {r.bad_blobs} bad blob(s); salvaged {r.salvaged}, "
        f"wrote {r.blobs_written} blob(s); healed {len(r.healed_snapshots)} snapshot(s)"
        + ("" if r.index_rebuilt else "; run 'amber repair index' to drop the lost packs from the index")
    )
    if r.unhealed_snapshots:
        raise IntegrityError(f"{len(r.unhealed_snapshots)} snapshot(s) could not be healed")


COMMANDS: list[click.Command] = []  # joins the repair group (cmd_repair)
