"""metrics: Prometheus exposition to stdout or a node_exporter textfile."""

from __future__ import annotations

import os
import sys

import click

from amber.cli.context import AppContext, pass_app
from amber.cli.output import echo
from amber.ops.config.model import default_config_path, default_state_dir


@click.command()
@click.option("--textfile", type=click.Path(dir_okay=False),
              help="Write atomically to this file (node_exporter textfile collector).")  # fmt: skip
@click.option("--repo-stats/--no-repo-stats", default=True, show_default=True,
              help="Open the repositories for size, snapshot count and dedup ratio.")  # fmt: skip
@pass_app
def metrics(app: AppContext, textfile: str | None, repo_stats: bool) -> None:
    """Print metrics: last success, duration, bytes added, size, dedup ratio, errors, drills."""
    from amber.ops import metrics as metrics_service  # prometheus_client: only when asked

    config = app.config() if app.config_path or os.path.exists(default_config_path()) else None
    state_path = config.state.path if config else os.path.join(default_state_dir(), "state.db")
    stats = []
    if repo_stats:
        if config is not None:
            stats = metrics_service.configured_stats(config, app.passwords, app.operation)
        if app.repo or (config is None and os.environ.get("AMBER_REPOSITORY")):
            with app.open() as repo:
                stats.append(metrics_service.repository_stats(repo, app.target().name))
    data = metrics_service.exposition(metrics_service.build(config, state_path, stats))
    target = textfile or (config.metrics.textfile if config else None)
    if target:
        metrics_service.write_textfile(target, data)
        echo(f"wrote {target}")
    else:
        sys.stdout.buffer.write(data)


COMMANDS = [metrics]
