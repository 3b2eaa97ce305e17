"""init and backup."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from amber.anomaly.scoring import Thresholds, assess
from amber.cli.context import AppContext, make_passwords, pass_app
from amber.cli.options import limit_options
from amber.cli.output import (
    BarProgress,
    JsonProgress,
    echo,
    emit_json,
    err_console,
    human_bytes,
    plain,
    quantity,
    scan_total,
    showing,
)
from amber.engine.patterns import read_exclude_files
from amber.errors import ConfigError, UsageError
from amber.ops import limits as limits_service
from amber.ops.config.model import default_config_path
from amber.ops.config.target import load_optional, resolve
from amber.services import backup as backup_service
from amber.services import session


@click.command()
@click.option(
    "--append-only", is_flag=True, help="Clients may add backups but never delete or overwrite (permanent)."
)
@click.option("--copy-chunker-params", is_flag=True,
              help="Share --from-repo's blob IDs and chunker: copies between the two dedup with "
                   "direct backups and need no re-hashing.")  # fmt: skip
@click.option("--from-repo", metavar="REPO", help="The repository whose chunker to share.")
@click.option("--from-password-file", type=click.Path(dir_okay=False), help="Password file of --from-repo.")
@click.option("--from-password-command", help="Command printing --from-repo's password.")
@pass_app
def init(
    app: AppContext, append_only: bool, copy_chunker_params: bool, from_repo: str | None,
    from_password_file: str | None, from_password_command: str | None,
) -> None:  # fmt: skip
    """Create a new repository."""
    if copy_chunker_params != bool(from_repo):
        raise UsageError("--copy-chunker-params and --from-repo go together")
    ids_from = None
    if from_repo:
        given = bool(from_password_file or from_password_command)
        passwords = make_passwords(from_password_file, from_password_command) if given else app.passwords
        config, problem = load_optional(app.config_path)
        other = resolve(from_repo, config, passwords, given or app.passwords_given, problem=problem)
        ids_from = (other.location, other.passwords)
    here = app.target()
    repo = session.create(here.location, here.passwords.get(new=True), append_only, ids_from, app.operation,
                          here.options)  # fmt: skip
    mode = " (append-only)" if append_only else ""
    shared = f", chunker shared with {from_repo}" if from_repo else ""
    echo(f"created repository {repo.id[:10]} at {repo.backend.location}{mode}{shared}")


@click.command(context_settings={"ignore_unknown_options": False})
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("-e", "--exclude", multiple=True, help="Exclude a pattern (repeatable).")
@click.option(
    "--exclude-file",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Read exclude patterns from a file, one a line; # starts a comment (repeatable).",
)
@click.option(
    "--exclude-caches",
    is_flag=True,
    help="Skip directories that hold a CACHEDIR.TAG (browser, build and package caches).",
)
@click.option("-x", "--one-file-system", is_flag=True, help="Don't cross filesystem boundaries.")
@click.option("--tag", multiple=True, help="Add a tag (repeatable).")
@click.option("--host", help="Hostname to record (default: this host).")
@click.option("--time", "time_", help="Snapshot time, ISO 8601 (default: now).")
@click.option("--parent", help="Snapshot to compare against (default: latest for host and paths).")
@click.option("--force", is_flag=True, help="Re-read all files, ignoring the parent.")
@click.option("--stdin", "from_stdin", is_flag=True, help="Back up standard input.")
@click.option(
    "--stdin-filename",
    default="stdin",
    show_default=True,
    help="File name to record for --stdin or --stdin-from-command.",
)
@click.option("--stdin-from-command", is_flag=True, help="Back up the stdout of the command after --.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable progress and summary.")
@limit_options
@pass_app
def backup(
    app: AppContext, paths: tuple[str, ...], exclude: tuple[str, ...], exclude_file: tuple[str, ...],
    exclude_caches: bool, one_file_system: bool, tag: tuple[str, ...], host: str | None, time_: str | None,
    parent: str | None, force: bool, from_stdin: bool, stdin_filename: str,
    stdin_from_command: bool, as_json: bool, nice: int | None, ionice_class: str | None,
    ionice_level: int | None, threads: int | None, memory_cap: str | None,
) -> None:  # fmt: skip
    """Back up PATHS (or stdin) into the repository."""
    limits = limits_service.with_options(limits_service.Limits(), nice, ionice_class, ionice_level, threads,
                                         memory_cap)  # fmt: skip
    limits_service.apply(limits)
    req = backup_service.BackupRequest(
        paths=[] if stdin_from_command else list(paths),
        excludes=list(exclude) + read_exclude_files(exclude_file), exclude_caches=exclude_caches,
        one_file_system=one_file_system, tags=list(tag), host=host, time=time_, parent=parent,
        force=force, stdin_filename=stdin_filename, workers=limits.workers,
    )  # fmt: skip
    thresholds = _thresholds(app)
    req.assess = lambda facts: assess(facts, thresholds)
    interactive = not as_json and sys.stderr.isatty()
    progress: Any
    if as_json:
        progress = JsonProgress()
    elif interactive:
        progress = BarProgress("backup")
        if paths and not (from_stdin or stdin_from_command):
            scan_total(list(paths), progress)
    else:
        progress = None
    with app.open() as repo, showing(app.operation.events, progress):  # progress from the operation's sink
        if stdin_from_command:
            outcome = backup_service.backup_command(repo, req, list(paths))
        elif from_stdin:
            outcome = backup_service.backup_stream(repo, req, sys.stdin.buffer)
        else:
            outcome = backup_service.backup_paths(repo, req)
    _report(outcome, as_json)
    backup_service.raise_if_suspicious(outcome)
    backup_service.raise_if_partial(outcome)


def _thresholds(app: AppContext) -> Thresholds:
    """``[anomaly]`` from the config file when there is one, else the defaults."""
    if os.path.exists(app.config_path or default_config_path()):
        try:
            return app.config().anomaly
        except ConfigError as exc:  # a broken config must not stop a backup or a forget
            err_console.print(f"[yellow]warning:[/] {plain(exc.message)}; default [anomaly] thresholds used",
                              highlight=False)  # fmt: skip
    return Thresholds()


def _report(outcome: backup_service.BackupOutcome, as_json: bool) -> None:
    s = outcome.snapshot.summary
    if as_json:
        emit_json({
            "message_type": "summary",
            "snapshot_id": outcome.snapshot_id,
            "files_new": s.files_new, "files_changed": s.files_changed,
            "files_unmodified": s.files_unmodified, "dirs": s.dirs,
            "total_files_processed": s.total_files, "total_bytes_processed": s.total_bytes,
            "data_blobs": s.data_blobs_added, "tree_blobs": s.tree_blobs_added,
            "data_added": s.data_added, "data_added_packed": s.data_added_stored,
            "total_duration": s.duration_s, "partial": outcome.snapshot.partial,
            "skipped": outcome.snapshot.skipped,
            "changed_during_read": outcome.snapshot.changed_during_read,
            "anomaly": s.anomaly.verdict if s.anomaly is not None else None,
        })  # fmt: skip
        return
    for path in outcome.snapshot.skipped:
        why = outcome.result.why_skipped.get(path)
        err_console.print(f"[yellow]skipped:[/] {plain(path)}" + (f": {plain(why)}" if why else ""),
                          highlight=False)  # fmt: skip
    for path in outcome.snapshot.changed_during_read:
        err_console.print(f"[yellow]changed while reading:[/] {plain(path)}", highlight=False)
    for note in outcome.result.notes:
        err_console.print(f"note: {plain(note)}", highlight=False)
    echo(
        f"Files: {s.files_new} new, {s.files_changed} changed, {s.files_unmodified} unmodified\n"
        f"Dirs: {s.dirs}\n"
        f"Added: {human_bytes(s.data_added)} ({human_bytes(s.data_added_stored)} stored)\n"
        f"Processed {quantity(s.total_files, 'file')}, {human_bytes(s.total_bytes)} in {s.duration_s:.2f}s\n"
        f"snapshot {outcome.snapshot_id[:8]} saved" + (" (partial)" if outcome.snapshot.partial else "")
    )


COMMANDS = [init, backup]
