"""config check."""

from __future__ import annotations

from typing import Any

import click

from amber.cli.context import AppContext, pass_app
from amber.cli.output import echo, emit_json, err_console, plain
from amber.errors import ConfigError
from amber.ops.config import show as config_show
from amber.ops.config import verify
from amber.ops.config.model import Config


@click.group()
def config() -> None:
    """Inspect the config file."""


@config.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_app
def check(app: AppContext, as_json: bool) -> None:
    """Validate the config file and summarize it (repository options and limits too; secrets masked).

    Also reads every password_file and checks every notify URL against apprise; exits 21 on a problem.
    """
    cfg = app.config()
    problems = verify.problems(cfg)
    if as_json:
        emit_json({**_summary(cfg), "ok": not problems, "problems": problems})
    else:
        _show(cfg, "ok" if not problems else "read, but the checks below failed")
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        for problem in problems:
            err_console.print(f"[red]error:[/] {plain(problem)}", highlight=False)
        raise ConfigError(f"{cfg.source}: {len(problems)} problems")


def _show(cfg: Config, verdict: str) -> None:
    echo(f"{cfg.source}: {verdict}")
    for r in cfg.repositories.values():
        flags = [f for f in ("offsite", "immutable", "offline") if getattr(r, f)]
        echo(f"repository {r.name}: {config_show.mask_url(r.url)} ({', '.join([r.kind, *flags])})")
        for line in config_show.repository_lines(r):
            echo(line)
    for p in cfg.retention.values():
        echo(f"retention {p.name}: {_policy(p.__dict__)}")
    for j in cfg.jobs.values():
        parts = [f"{len(j.paths)} path(s)"] if j.paths else []
        parts += [f"{len(j.databases)} database(s)"] if j.databases else []
        what = " + ".join(parts) or f"stdout of {j.stdin_command[0]}"
        line = f"job {j.name}: {what} -> {', '.join([j.repository, *j.mirrors])}"
        line += f"; retention {j.retention}" if j.retention else ""
        line += f"; schedule {j.schedule}" if j.schedule else "; not scheduled"
        line += f"; from {j.snapshot} snapshots, {j.snapshot_keep} kept" if j.snapshot else ""
        echo(line)
    echo(f"notify: {len(cfg.notify)} target(s); state: {cfg.state.path}")


def _policy(values: dict[str, Any]) -> str:
    rules = [f"{k.removeprefix('keep_')}={v}" for k, v in values.items()
             if k.startswith("keep_") and v and k != "keep_tags"]  # fmt: skip
    if values.get("keep_tags"):
        rules.append(f"tags={','.join(values['keep_tags'])}")
    return " ".join(rules)


def _summary(cfg: Config) -> dict[str, Any]:
    return {
        "source": cfg.source,
        "ok": True,
        "repositories": {n: config_show.repository_summary(r) for n, r in cfg.repositories.items()},
        "retention": {n: {k: v for k, v in p.__dict__.items() if k != "name"}
                      for n, p in cfg.retention.items()},
        "jobs": {n: {"paths": list(j.paths), "repository": j.repository, "mirrors": list(j.mirrors),
                     "retention": j.retention, "schedule": j.schedule, "snapshot": j.snapshot,
                     "snapshot_keep": j.snapshot_keep,
                     "databases": [d.stream_path for d in j.databases]} for n, j in cfg.jobs.items()},
        "notify_targets": len(cfg.notify),
        "state": cfg.state.path,
    }  # fmt: skip


COMMANDS = [config]
