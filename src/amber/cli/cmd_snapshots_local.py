"""local-snapshots: a job's filesystem snapshots on this machine: list, cleanup, verify NAME."""

from __future__ import annotations

import click

from amber.cli.context import AppContext, pass_app
from amber.cli.output import echo, echo_table, emit_json, human_bytes
from amber.errors import IntegrityError, UsageError
from amber.ops.localsnap import inventory


@click.command("local-snapshots")
@click.argument("words", nargs=-1, metavar="[list|cleanup] [JOB] | verify NAME")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per snapshot (or result).")
@pass_app
def local_snapshots(app: AppContext, words: tuple[str, ...], as_json: bool) -> None:
    """List local snapshots: `local-snapshots [JOB]`; remove the unneeded: `local-snapshots cleanup [JOB]`;
    check one against the repository: `local-snapshots verify NAME`."""
    config = app.config()
    action, rest = (
        (words[0], words[1:]) if words and words[0] in ("cleanup", "verify", "list") else ("list", words)
    )
    if len(rest) > 1 or (action == "verify" and len(rest) != 1):
        raise UsageError("usage: amber local-snapshots [list|cleanup] [JOB] | local-snapshots verify NAME")
    if action == "cleanup":
        removed = inventory.cleanup(config, rest[0] if rest else None)
        for name in removed:
            emit_json({"removed": name}) if as_json else echo(f"removed {name}")
        if not removed and not as_json:
            echo("nothing to remove")
        return
    if action == "verify":
        report = inventory.verify_local(config, rest[0], app.passwords)
        if as_json:
            emit_json(report.__dict__ | {"ok": report.ok})
        else:
            echo(
                f"{report.name}: {report.checked} files checked against repository snapshot "
                f"{report.repository_snapshot[:8]}"
            )
            for label, paths in (
                ("changed", report.changed),
                ("missing", report.missing),
                ("extra", report.extra),
            ):
                for path in paths:
                    echo(f"  {label}: {path}")
        if not report.ok:
            raise IntegrityError(
                f"local snapshot {report.name} differs from the repository: "
                f"{len(report.changed)} changed, {len(report.missing)} missing, "
                f"{len(report.extra)} extra"
            )
        return
    entries = list(inventory.entries(config, rest[0] if rest else None))
    if as_json:
        for e in entries:
            emit_json(e.as_dict())
        return
    if not entries:
        echo("no local snapshots")
        return
    rows = [("NAME", "JOB", "KIND", "FILESYSTEM", "CREATED (UTC)", "SIZE", "BACKED UP AS", "STATE")]
    for e in entries:
        size = human_bytes(e.size) if e.size is not None else "-"
        created = e.created[:19].replace("T", " ")
        rows.append((e.name, e.job, e.kind, ",".join(e.filesystems), created, size,
                     e.repository_snapshot[:8] or "-", e.state))  # fmt: skip
    echo_table(rows)


COMMANDS = [local_snapshots]
