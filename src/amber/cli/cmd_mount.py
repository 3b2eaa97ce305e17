"""mount: browse every snapshot as a read-only filesystem (FUSE)."""

from __future__ import annotations

import os

import click

from amber.cli.context import AppContext, pass_app
from amber.cli.output import err_console, plain
from amber.errors import UsageError
from amber.storage.url import parse_location


def _notice(text: str) -> None:
    err_console.print(f"note: {plain(text)}", soft_wrap=True, highlight=False)


@click.command()
@click.argument("mountpoint", type=click.Path(file_okay=False))
@click.option("--allow-other", is_flag=True,
              help="Let other users see the mount (needs user_allow_other in /etc/fuse.conf).")  # fmt: skip
@click.option("--no-catalog", is_flag=True, help="List versions/ from the trees, not the catalog.")
@click.option("--cache-size", type=click.IntRange(1), default=64, show_default=True, metavar="MIB",
              help="Memory for decrypted file data, in MiB.")  # fmt: skip
@pass_app
def mount(app: AppContext, mountpoint: str, allow_other: bool, no_catalog: bool, cache_size: int) -> None:
    """Mount the repository read-only at MOUNTPOINT: ids/, snapshots/, hosts/, tags/, versions/.

    Runs until unmounted (fusermount3 -u MOUNTPOINT) or interrupted.
    """
    from amber.catalog.fuse_adapter import load_fuse, serve
    from amber.catalog.mountfs import open_view

    if not os.path.isdir(mountpoint):
        raise UsageError(f"mount point {mountpoint} is not a directory")
    load_fuse()  # fail before asking for a password when FUSE is missing
    with app.open() as repo:  # a shared lock: prune keeps the packs we read until we are done
        fs = open_view(repo, not no_catalog and app.catalog_enabled(), _notice, cache_bytes=cache_size << 20)
        try:

            def ready() -> None:
                click.echo(f"mounted at {mountpoint}; unmount with: fusermount3 -u {mountpoint}", err=True)

            remote = parse_location(app.location).scheme != "local"
            serve(fs, mountpoint, allow_other, ready, _notice, threaded=remote)
        finally:
            fs.close()
    click.echo("unmounted", err=True)


COMMANDS = [mount]
