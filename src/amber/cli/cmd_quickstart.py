"""quickstart: the embedded default job."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from amber.cli.context import AppContext, pass_app
from amber.cli.output import echo, human_bytes, quantity
from amber.services import quickstart as qs


def _global_repo(app: AppContext) -> str | None:
    """``amber -r X quickstart`` (given on the command line, not AMBER_REPOSITORY from everyday use)."""
    parent = click.get_current_context().parent
    if parent is not None and parent.get_parameter_source("repo") == ParameterSource.COMMANDLINE:
        return app.repo
    return None


@click.command()
@click.argument("source", required=False, type=click.Path(exists=True, file_okay=False))
@click.option(
    "-r",
    "--repo",
    "--repository",
    "repository",
    type=click.Path(file_okay=False),
    help="Repository directory, as the global -r/--repo (default: ~/.local/share/amber/default).",
)
@click.option("--keep-restore", is_flag=True, help="Keep the restored copy (default: removed once compared).")
@pass_app
def quickstart(app: AppContext, source: str | None, repository: str | None, keep_restore: bool) -> None:
    """Back up SOURCE (default ~/Desktop, else the current directory), list, restore, verify.

    Caches (CACHEDIR.TAG) and .git, .venv, node_modules, __pycache__ and a top-level build/
    are left out.
    """
    repository = repository or _global_repo(app)
    passwords = app.passwords if app.passwords_given else None
    result = qs.run(Path(source) if source else None, Path(repository) if repository else None,
                    keep_restore, passwords)  # fmt: skip
    s = result.outcome.snapshot.summary
    echo(f"repository: {result.repository}")
    echo(
        f"backup of {result.source}: snapshot {result.outcome.snapshot_id[:8]}, "
        f"{quantity(s.total_files, 'file')}, {human_bytes(s.total_bytes)} "
        f"({s.files_unmodified} unchanged, {human_bytes(s.data_added_stored)} stored)"
    )
    echo(f"left out: caches (CACHEDIR.TAG), {', '.join(result.excludes)}")
    echo(f"snapshots in repository: {len(result.snapshots)}")
    for sid, snap in result.snapshots[-5:]:
        echo(f"  {sid[:8]}  {snap.time[:19]}  {', '.join(snap.paths)}")
    gone = "" if result.kept else " (removed after the comparison; --keep-restore keeps it)"
    echo(f"restored {quantity(result.restored.files, 'file')} into {result.restore_dir}{gone}")
    echo(f"  SHA-256 verified: {result.restored.verified} (files with content; hard links once)")
    echo(
        f"  byte-compared with the source: {quantity(result.compared, 'regular file')} (the verified ones, "
        f"{result.empty} empty and {result.extra_links} further hard link(s): no content of their own "
        f"to hash), mismatches {len(result.mismatches)}"
    )
    if result.not_compared:
        echo(f"  not compared: {result.not_compared} symlink(s) or special file(s), restored as such")
    echo("check: " + ("no errors found" if result.report.ok else f"{len(result.report.errors)} errors"))
    qs.raise_if_failed(result)
    echo("OK: backup restores byte-identically")
    _next_steps(result)


def _next_steps(result: qs.QuickstartResult) -> None:
    q = shlex.quote
    lines = ["", "Next, to use this repository:", f"  export AMBER_REPOSITORY={q(result.repository)}"]
    if result.password_file:
        lines.append(f"  export AMBER_PASSWORD_FILE={q(result.password_file)}")
    lines += [
        "  amber snapshots",
        f"  amber restore latest:{q(result.source)} --target /tmp/restored",
        "  amber backup ~/Documents --exclude-caches",
        f"  amber quickstart{_repo_flag(result)} {q(result.source)}   # again: incremental, and verified",
    ]
    bindir = os.path.dirname(sys.executable)
    here = os.path.join(bindir, "amber")
    if os.path.exists(here) and shutil.which("amber") != here:
        lines += [f"amber is in {bindir}, which is not on PATH: run",
                  f"  export PATH={q(bindir)}:\"$PATH\"",
                  "or install it for your user with `pipx install .` in the source directory."]  # fmt: skip
    echo("\n".join(lines))


def _repo_flag(result: qs.QuickstartResult) -> str:
    default = str(qs.data_home() / "default")
    return "" if result.repository == default else f" -r {shlex.quote(result.repository)}"


COMMANDS = [quickstart]
