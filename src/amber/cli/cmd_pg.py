"""pg wal-push / wal-get / basebackup / list / restore: PostgreSQL continuous archiving (design §12d)."""

from __future__ import annotations

import datetime
import os
import shlex
import shutil
import sys
import time

import click

from amber.cli.context import AppContext, pass_app
from amber.cli.output import echo, emit_json, human_bytes
from amber.errors import CheckFailed, UsageError
from amber.services import keycache, wal, walasync, walcheck, walnames, walspool
from amber.sources.databases import pgbase
from amber.sources.databases.spec import DatabaseSpec

_CLUSTER = click.option(
    "--cluster",
    default="main",
    show_default=True,
    envvar="AMBER_PG_CLUSTER",
    help="Name of the server's archive in the repository (or AMBER_PG_CLUSTER).",
)
_JOB = click.option("--job", default=None, help="Use this config job's repository.")


@click.group()
def pg() -> None:
    """PostgreSQL continuous archiving and point-in-time restore."""


@click.command("wal-push")
@click.argument("path", type=click.Path(dir_okay=False))
@_CLUSTER
@_JOB
@click.option(
    "--async", "batch", is_flag=True,
    help="Also archive every WAL file PostgreSQL has ready, in this one call (or AMBER_WAL_ASYNC=1).",
)  # fmt: skip
@pass_app
def wal_push(app: AppContext, path: str, cluster: str, job: str | None, batch: bool) -> None:
    """Archive one WAL file (archive_command = 'amber pg wal-push %p'). Exit 0 only once it is stored;
    the same file again exits 0; other content under an archived name exits 40."""
    t = app.target(job)
    spool = walspool.spool_dir(t.location, cluster) if walspool.enabled(batch) else None
    if spool is not None and walspool.already_pushed(spool, path):
        return  # an earlier call of the batch archived it
    with keycache.opened_cached(t.location, t.passwords, t.options, app.operation) as repo:
        if spool is None:
            wal.push(repo, cluster, path)
        else:
            walasync.push_ready(repo, cluster, path, spool)


@click.command("wal-get")
@click.argument("name")
@click.argument("dest", type=click.Path(dir_okay=False))
@_CLUSTER
@_JOB
@pass_app
def wal_get(app: AppContext, name: str, dest: str, cluster: str, job: str | None) -> None:
    """Fetch archived WAL file NAME to DEST (restore_command = 'amber pg wal-get %f %p').
    Exits 41 when the archive does not have it: recovery then ends there."""
    t = app.target(job)
    with keycache.opened_cached(t.location, t.passwords, t.options, app.operation) as repo:
        wal.fetch(repo, cluster, name, dest)


@pg.command("basebackup")
@_CLUSTER
@_JOB
@click.option("--host", default="", help="Host, or socket directory (default: libpq's, PGHOST).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Server port (default: PGPORT).")
@click.option("--user", default="", help="Replication user (default: PGUSER).")
@click.option("--password-file", "db_password_file", default="", help="File holding the database password.")
@click.option("--tag", "tags", multiple=True, help="Extra snapshot tag (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the snapshot ID and WAL positions as JSON.")
@pass_app
def basebackup(
    app: AppContext,
    cluster: str,
    job: str | None,
    host: str,
    port: int | None,
    user: str,
    db_password_file: str,
    tags: tuple[str, ...],
    as_json: bool,
) -> None:
    """Take a base backup with pg_basebackup into a snapshot (the server must archive its WAL here)."""
    walnames.check_cluster(cluster)
    spec = DatabaseSpec(
        "postgresql", "postgres", host=host, port=port, user=user, password_file=db_password_file
    )
    with app.open(job=job) as repo:
        outcome, info = pgbase.basebackup(repo, spec, cluster, tags)
    if as_json:
        from amber.ops.wal_status import info_dict

        emit_json({"snapshot": outcome.snapshot_id, **info_dict(info)})
        return
    echo(
        f"base backup {outcome.snapshot_id[:8]} of cluster {cluster}: "
        f"WAL {info.start_lsn} .. {info.stop_lsn} "
        f"on timeline {info.timeline} ({human_bytes(outcome.snapshot.summary.total_bytes)})"
    )


@pg.command("list")
@_JOB
@click.option("--json", "as_json", is_flag=True, help="JSON: base backups and the WAL archived per cluster.")
@pass_app
def list_(app: AppContext, job: str | None, as_json: bool) -> None:
    """Base backups and the WAL range archived, with gaps."""
    from amber.ops.wal_status import summarize  # shared with the dashboard's WAL page

    with app.open(lock=False, read_only=True, job=job) as repo:
        bases = wal.base_backups(repo)
        archived = wal.archived(repo)
    report = summarize(bases, archived)
    if as_json:
        emit_json(report)
        return
    for entry in report:
        gaps, bases_of = entry["gaps"], entry["base_backups"]
        first, last = entry["first_segment"], entry["last_segment"]
        span = f"{first} .. {last}" if first else "no segments"
        missing = f", {len(gaps)} missing from {gaps[0]}" if gaps else ""
        stored = f"{human_bytes(entry['wal_bytes'])} stored under wal/"  # format 3: records; data in packs
        echo(f"cluster {entry['cluster']}: {entry['wal_files']} WAL files ({stored}), {span}{missing}")
        for b in bases_of:
            echo(
                f"  base {b['snapshot'][:8]}  ended {b['stop_time']}  WAL {b['start_lsn']} .. "
                f"{b['stop_lsn']}  timeline {b['timeline']}"
            )


@pg.command("check")
@_JOB
@click.option("--read-data", is_flag=True, help="Also read, decrypt and verify every archived WAL file.")
@pass_app
def check(app: AppContext, job: str | None, read_data: bool) -> None:
    """The WAL archive alone: each base backup's own WAL, gaps after the oldest, and with
    --read-data every WAL file's content (amber check does this and more)."""
    with app.open(lock=False, read_only=True, job=job) as repo:
        report = walcheck.check_wal(repo, read_data=read_data)
    for w in report.warnings:
        echo(f"warning: {w}", err=True)
    for e in report.errors:
        echo(f"error: {e}", err=True)
    read = f", {report.read} read" if read_data else ""
    echo(f"checked {report.objects} WAL files{read}; " + ("no errors found" if not report.errors
                                                        else f"{len(report.errors)} error(s)"))  # fmt: skip
    if report.errors:
        raise CheckFailed(f"the WAL archive check found {len(report.errors)} error(s)")


def default_restore_command(app: AppContext, cluster: str, job: str | None) -> str:
    """How the restored server calls amber back: this program, this repository and its password
    file or command (a password typed or in a variable cannot be passed on: give --restore-command)."""
    exe = sys.argv[0] if os.path.basename(sys.argv[0]) == "amber" else shutil.which("amber")
    argv = [exe] if exe else [sys.executable, "-m", "amber"]
    target = app.target(job)
    argv += ["-r", target.location]
    if target.passwords.password_file:
        argv += ["--password-file", os.path.abspath(target.passwords.password_file)]
    elif target.passwords.password_command:
        argv += ["--password-command", target.passwords.password_command]
    argv += ["pg", "wal-get", "--cluster", cluster]
    return " ".join(shlex.quote(a) for a in argv) + ' %f "%p"'


def parse_target_time(text: str) -> datetime.datetime:
    """``YYYY-MM-DD HH:MM:SS`` (local time) or with an offset; always returned with one."""
    try:
        value = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--target-time {text!r}: expected YYYY-MM-DD HH:MM:SS[+HH:MM]") from None
    return value if value.tzinfo else value.astimezone()


@pg.command("restore")
@click.option(
    "--to",
    "directory",
    required=True,
    type=click.Path(file_okay=False),
    help="New data directory (must be empty or absent).",
)
@click.option("--target-time", default=None, help="Recover to this moment (YYYY-MM-DD HH:MM:SS[+TZ]).")
@click.option("--target-lsn", default=None, help="Recover to this WAL position (e.g. 0/3000060).")
@click.option("--target-timeline", default="latest", show_default=True, help="Timeline to recover along.")
@click.option(
    "--restore-command",
    default=None,
    help="restore_command for the server (default: this amber, repository and password file).",
)
@_CLUSTER
@_JOB
@pass_app
def restore(
    app: AppContext,
    directory: str,
    target_time: str | None,
    target_lsn: str | None,
    target_timeline: str,
    restore_command: str | None,
    cluster: str,
    job: str | None,
) -> None:
    """Restore the newest base backup before the target into DIR, set up to replay archived WAL up to
    the target (or to the end of the archive) when PostgreSQL starts on it."""
    if target_time and target_lsn:
        raise UsageError("give --target-time or --target-lsn, not both")
    when = parse_target_time(target_time) if target_time else None
    if target_lsn:
        walnames.parse_lsn(target_lsn)
    command = restore_command or default_restore_command(app, cluster, job)
    started = time.monotonic()
    with app.open(lock=False, read_only=True, job=job) as repo:
        base, size = pgbase.restore_point_in_time(
            repo, walnames.check_cluster(cluster), directory, command, when, target_lsn, target_timeline
        )
    target = when.isoformat(sep=" ") if when else (target_lsn or "the end of the archive")
    echo(
        f"restored base backup {base.snapshot_id[:8]} ({human_bytes(size)}) into {directory} in "
        f"{time.monotonic() - started:.1f} s; start PostgreSQL on it to recover to {target}"
    )


pg.add_command(wal_push)
pg.add_command(wal_get)
pg.add_command(wal_get, name="wal-fetch")  # WAL-G's name for it
COMMANDS = [pg, wal_push, wal_get]
