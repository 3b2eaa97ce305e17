"""`amber status` without --copies: every configured job's verdict, in the terminal.

The same board the web dashboard shows (`ops.board`), read from local state only;
no repository is opened.
"""

from __future__ import annotations

import time

from amber.cli.output import echo, emit_json, plain
from amber.errors import AmberError, UsageError
from amber.ops import board
from amber.ops.config.target import load_optional

MARKS = {"protected": "OK  ", "at-risk": "WARN", "unprotected": "FAIL"}


def _ago(then: float | None, now: float) -> str:
    if then is None:
        return "never"
    minutes = max(0, int(now - then) // 60)
    if minutes < 60:
        return f"{minutes} min ago"
    if minutes < 48 * 60:
        return f"{minutes // 60} h ago"
    return f"{minutes // (24 * 60)} days ago"


def _until(when: float | None, now: float) -> str:
    if when is None:
        return "not scheduled"
    minutes = max(0, int(when - now) // 60)
    return f"in {minutes} min" if minutes < 120 else f"in {minutes // 60} h"


def show_board(config_path: str | None, as_json: bool) -> None:
    """Print the board; exit 1 when a job is unprotected (at-risk jobs only warn)."""
    config, problem = load_optional(config_path)
    if config is None:
        raise UsageError(
            (problem + "; " if problem else "no config file; ")
            + "`amber status` shows the jobs of a config (docs/config.md). "
            "For one repository's copies: amber status --copies -r REPO"
        )
    if not config.jobs:
        raise UsageError("status: the config has no [jobs]; nothing to judge")
    now = time.time()
    jobs = board.board(config, now)
    if as_json:
        emit_json({"jobs": [j.as_dict() for j in jobs]})
    else:
        for job in jobs:
            state = "running now" if job.running else f"last success {_ago(job.facts.last_success, now)}"
            echo(f"{MARKS.get(job.verdict.verdict, '?   ')}  {plain(job.name)}: {job.verdict.verdict}, "
                 f"{state}, next run {_until(job.next_run, now)}")  # fmt: skip
            for reason in job.verdict.texts:
                echo(f"      - {plain(reason)}")
    unprotected = [j.name for j in jobs if j.verdict.verdict == "unprotected"]
    if unprotected:
        raise AmberError(f"unprotected: {', '.join(unprotected)}")
