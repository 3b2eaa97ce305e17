"""Ransomware end to end: a simulated attack through `amber backup` and `amber run`.

The suspicious snapshot is written and tagged, the command exits 36, `amber run`
sends an anomaly alert to a local receiver, and retention keeps the last clean
snapshot until `amber anomaly ack`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.anomaly import scenarios
from tests.conftest import AmberCli
from tests.receivers import HttpReceiver, http_receiver_fixture  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow  # several real backups through the CLI

SUSPICIOUS_EXIT = 36


def _snapshots(cli: AmberCli, *args: str) -> list[dict[str, object]]:
    return list(json.loads(cli.run(*args, "snapshots", "--json").stdout))


def test_backup_flags_attack_and_forget_holds_until_ack(cli: AmberCli, tmp_path: Path) -> None:
    home = tmp_path / "home"
    scenarios.make_home(home)
    cli.run("backup", str(home))
    scenarios.software_update(home, random.Random(1))
    cli.run("backup", str(home))  # benign: exit 0
    clean = _snapshots(cli)[-1]["id"]
    scenarios.ransomware(home, random.Random(2))
    attacked = cli.run("backup", str(home), check=False)
    assert attacked.returncode == SUSPICIOUS_EXIT, attacked.stderr
    assert "tagged suspicious" in attacked.stderr
    listed = cli.run("anomaly", "list")
    assert "holding retention" in listed.stdout and "1 suspicious snapshot" in listed.stdout
    suspicious = _snapshots(cli)[-1]
    assert "suspicious" in suspicious["tags"]  # type: ignore[operator]
    shown = cli.run("anomaly", "show", str(suspicious["id"])[:8]).stdout
    assert "verdict: suspicious" in shown and "example:" in shown and ".locked" in shown

    dry = cli.run("forget", "--keep-last", "1", "--dry-run").stdout
    assert f"{str(clean)[:8]}" in dry and "held: clean before suspicious" in dry
    cli.run("forget", "--keep-last", "1")
    ids = [s["id"] for s in _snapshots(cli)]
    assert clean in ids and len(ids) == 2  # the oldest went, the held clean one stayed
    by_id = cli.run("forget", str(clean)[:8]).stdout
    assert "held:" in by_id and clean in [s["id"] for s in _snapshots(cli)]

    acked = cli.run("anomaly", "ack", str(suspicious["id"])[:8]).stdout
    assert "acknowledged" in acked
    assert f"amber anomaly ack {str(suspicious['id'])[:8]}" in cli.run("audit", "show").stdout  # audited
    assert "acknowledged" in cli.run("anomaly", "list").stdout
    cli.run("forget", "--keep-last", "1")
    remaining = _snapshots(cli)
    assert [s["id"] for s in remaining] != [clean] and len(remaining) == 1
    assert "anomaly-acked" in remaining[0]["tags"]  # type: ignore[operator]


def test_run_alerts_and_configured_retention_respects_hold(
    cli: AmberCli, tmp_path: Path, http_receiver: HttpReceiver
) -> None:
    home = tmp_path / "home"
    scenarios.make_home(home)
    config = tmp_path / "amber.toml"
    config.write_text(f"""
[repositories.main]
url = "{cli.repo}"
password_env = "AMBER_PASSWORD"

[retention.short]
keep_last = 1

[anomaly]
hold_clean = 1

[jobs.home]
paths = ["{home}"]
repository = "main"
retention = "short"

[jobs.home.anomaly]
min_files = 10

[[notify]]
url = "{http_receiver.url("json", "/hook")}"
events = ["anomaly"]

[state]
path = "{tmp_path / 'state' / 'state.db'}"
""")
    run = ("--config", str(config), "run", "home")
    cli.run(*run)
    cli.run(*run)
    clean = _snapshots(cli)[-1]["id"]
    scenarios.ransomware(home, random.Random(4), share=0.3)
    attacked = cli.run(*run, check=False)
    assert attacked.returncode == SUSPICIOUS_EXIT, attacked.stderr
    alert = http_receiver.wait(1)[0].json()
    assert "SUSPICIOUS" in alert["title"], alert
    assert "renamed" in alert["message"] and "tagged suspicious" in alert["message"], alert
    ids = [s["id"] for s in _snapshots(cli)]
    assert clean in ids and len(ids) == 2  # keep_last 1 kept the suspicious one, the hold the clean one
    status = cli.run("--config", str(config), "status", check=False).stdout
    assert " home: " in status and "tagged suspicious" in status  # the verdict says it too
    suspicious = next(s for s in _snapshots(cli) if "suspicious" in s.get("tags", []))  # type: ignore[operator]
    cli.run("--config", str(config), "anomaly", "ack", str(suspicious["id"])[:8])
    assert "tagged suspicious" not in cli.run("--config", str(config), "status", check=False).stdout
