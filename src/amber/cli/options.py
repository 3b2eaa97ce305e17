"""Options shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from amber.services.snapshots import SnapshotFilter

F = TypeVar("F", bound=Callable[..., Any])


def snapshot_filter_options(f: F) -> F:
    f = click.option("--path", "paths", multiple=True, help="Only snapshots with this path.")(f)
    f = click.option("--tag", "tags", multiple=True, help="Only snapshots with this tag (a,b = both).")(f)
    f = click.option("--host", "hosts", multiple=True, help="Only snapshots from this host.")(f)
    return f


def make_filter(hosts: tuple[str, ...], tags: tuple[str, ...], paths: tuple[str, ...]) -> SnapshotFilter:
    return SnapshotFilter(list(hosts), list(tags), list(paths))


def limit_options(f: F) -> F:
    """Resource controls (override [limits] in the config file)."""
    f = click.option("--memory-cap", metavar="SIZE", help="Cap buffer memory, e.g. 512M (fewer threads).")(f)
    f = click.option("--threads", type=click.IntRange(1, 1024), help="Archiver worker threads.")(f)
    f = click.option("--ionice-level", type=click.IntRange(0, 7), help="Level within the I/O class.")(f)
    f = click.option("--ionice-class", type=click.Choice(["idle", "best-effort", "realtime"]),
                     help="I/O scheduling class; idle yields the disk to everything else.")(f)  # fmt: skip
    f = click.option("--nice", type=click.IntRange(-20, 19), help="CPU priority (19 = lowest).")(f)
    return f
