"""The lazy command table names every command module's commands, and only those."""

from __future__ import annotations

import pkgutil

import click

import amber.cli
from amber.cli.lazy import COMMAND_MODULES, load_module_commands
from amber.cli.main import cli


def test_table_matches_every_command_module() -> None:
    defined: dict[str, str] = {}
    for info in pkgutil.iter_modules(amber.cli.__path__):
        if info.name.startswith("cmd_"):
            for command in load_module_commands(info.name):
                assert command.name is not None
                assert command.name not in defined, f"{command.name} defined twice"
                defined[command.name] = info.name
    assert defined == COMMAND_MODULES


def test_every_listed_command_resolves() -> None:
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name


def test_repair_group_holds_packs_from_replica() -> None:
    repair = cli.get_command(click.Context(cli), "repair")
    assert isinstance(repair, click.Group)
    assert {"index", "snapshots", "packs"} <= set(repair.commands)
