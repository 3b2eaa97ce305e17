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
