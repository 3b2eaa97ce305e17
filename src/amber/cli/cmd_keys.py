"""key add|list|remove|passwd."""

from __future__ import annotations

import click

from amber.cli.context import AppContext, pass_app
from amber.cli.output import echo, show_path
from amber.services import keys as key_service
from amber.services.session import PasswordSource


def _new_password(app: AppContext, new_password_file: str | None) -> bytes:
    if new_password_file:
        return PasswordSource(password_file=new_password_file).get()
    assert app.passwords.prompt is not None
    return PasswordSource(prompt=app.passwords.prompt).get(new=True)


_new_pw_option = click.option(
    "--new-password-file", type=click.Path(dir_okay=False, exists=True),
    help="Read the new password from this file instead of prompting.",
)  # fmt: skip


APPEND_ONLY_WARNING = (
    "warning: an append-only key limits an honest amber client, not a compromised one: every key "
    "unwraps the same master key, so whoever holds this password can write a full key or a modified "
    "client and delete backups. Real protection is on the server: rclone serve restic --append-only, "
    "rest-server --append-only or S3 Object Lock (docs/backends.md)."
)


@click.group()
def key() -> None:
    """Manage the passwords that open the repository."""


@key.command("add")
@_new_pw_option
@click.option(
    "--append-only",
    is_flag=True,
    help="amber refuses deletes with this key; this limits an honest client only (design §21).",
)
@pass_app
def key_add(app: AppContext, new_password_file: str | None, append_only: bool) -> None:
    """Add a key with a new password."""
    with app.open() as repo:
        name = key_service.add(repo, _new_password(app, new_password_file), append_only)
        flag = " (append-only)" if append_only or repo.append_only else ""
    echo(f"added key {name[:8]}{flag}")
    if append_only or repo.append_only:
        echo(APPEND_ONLY_WARNING, err=True)


@key.command("list")
@pass_app
def key_list(app: AppContext) -> None:
    """List keys; * marks the one in use."""
    with app.open(lock=False) as repo:
        for info, current in key_service.list_keys(repo):
            mark = "*" if current else " "
            flag = "  append-only" if info.append_only else ""
            who = show_path(f"{info.username}@{info.hostname}")
            echo(f"{mark}{info.id[:8]}  {who}  {show_path(info.created[:19])}{flag}")


@key.command("remove")
@click.argument("key_id")
@pass_app
def key_remove(app: AppContext, key_id: str) -> None:
    """Remove a key (not the one in use)."""
    with app.open() as repo:
        key_service.remove(repo, key_id)
    echo(f"removed key {key_id}")


@key.command("passwd")
@_new_pw_option
@pass_app
def key_passwd(app: AppContext, new_password_file: str | None) -> None:
    """Change the password of the key in use."""
    with app.open() as repo:
        name = key_service.passwd(repo, _new_password(app, new_password_file))
    echo(f"password changed (key {name[:8]})")


COMMANDS = [key]
