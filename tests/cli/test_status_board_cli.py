"""`amber status` without --copies: each configured job's verdict, from the state database."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import AmberCli
from tests.ops.test_run import make_config


def test_a_job_that_never_ran_is_unprotected_and_a_run_changes_that(cli: AmberCli, tmp_path: Path) -> None:
    config = str(make_config(tmp_path, 'schedule = "hourly"'))

    before = cli.run("--config", config, "status", check=False)
    assert before.returncode == 1, before.stderr
    assert "FAIL  home: unprotected, last success never" in before.stdout
    assert "unprotected: home" in before.stderr

    cli.run("--config", config, "run", "home")
    after = cli.run("--config", config, "status", check=False)
    assert after.returncode == 0, after.stderr
    assert "home: " in after.stdout and "last success 0 min ago" in after.stdout
    assert "unprotected" not in after.stdout

    [job] = json.loads(cli.run("--config", config, "status", "--json").stdout)["jobs"]
    assert job["name"] == "home" and job["verdict"] in ("protected", "at-risk")
    assert job["last_success"] is not None and job["schedule"] == "hourly"


def test_without_a_config_it_says_what_status_needs(cli: AmberCli) -> None:
    out = cli.run("status", check=False)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1
    assert "no config file" in out.stderr and "amber status --copies -r REPO" in out.stderr


def test_copies_only_options_are_refused_without_copies(cli: AmberCli) -> None:
    out = cli.run("status", "--check", check=False)
    assert out.returncode == 2 and "go with --copies" in out.stderr
