"""db list / db restore: the database dumps in a snapshot (sources/databases)."""

from __future__ import annotations

import dataclasses

import click

from amber.cli.context import AppContext, pass_app
from amber.cli.output import echo, emit_json, human_bytes
from amber.errors import UsageError
from amber.sources.databases import restore as db_restore
from amber.sources.databases.spec import DatabaseSpec


@click.group()
def db() -> None:
    """Database dumps taken by jobs with [[jobs.NAME.databases]]."""


@db.command("list")
@click.argument("snapshot")
@click.option("--json", "as_json", is_flag=True, help="A JSON array of the dumps.")
@pass_app
def list_(app: AppContext, snapshot: str, as_json: bool) -> None:
    """The database dumps in SNAPSHOT."""
    with app.open(lock=False, read_only=True) as repo:
        dumps = db_restore.list_dumps(repo, snapshot)
    if as_json:
        emit_json([dataclasses.asdict(d) for d in dumps])
        return
    for d in dumps:
        echo(f"{d.kind}/{d.name}  {d.format}  {human_bytes(d.size)}  {d.path}")


@db.command("restore")
@click.argument("snapshot")
@click.argument("name")
@click.option("--to", "to", required=True, help="Target database name (a file path for SQLite).")
@click.option("--yes", is_flag=True, help="Overwrite a target that already holds data.")
@click.option("--host", default="", help="Host, or socket dir (PostgreSQL) / socket file (MariaDB).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Database server port.")
@click.option("--user", default="", help="Database user to connect as.")
@click.option("--password-file", default="", help="File holding the password (never on the command line).")
@click.option("--job", default=None, help="Connect as this config job does for the database.")
@pass_app
def restore(
    app: AppContext, snapshot: str, name: str, to: str, yes: bool, host: str, port: int | None, user: str,
    password_file: str, job: str | None,
) -> None:  # fmt: skip
    """Load dump NAME (e.g. shop or postgresql/shop) from SNAPSHOT into a database or SQLite file."""
    configured = _job_databases(app, job) if job else ()
    with app.open(lock=False, read_only=True) as repo:
        entry = db_restore.find_dump(repo, snapshot, name)
        target = db_restore.target_spec(entry, to, configured, host=host, port=port, user=user,
                                        password_file=password_file)  # fmt: skip
        size = db_restore.restore_dump(repo, snapshot, entry, target, overwrite=yes)
    echo(f"restored {entry.kind}/{entry.name} ({human_bytes(size)}) into {to}")


def _job_databases(app: AppContext, job: str) -> tuple[DatabaseSpec, ...]:
    jobs = app.config().jobs
    if job not in jobs:
        raise UsageError(f"no job named {job!r} in the config ({', '.join(sorted(jobs)) or 'none defined'})")
    return jobs[job].databases


COMMANDS = [db]
