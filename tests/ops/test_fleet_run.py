"""After each job, its run record reaches the repository; the fleet view reads every host's back."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from amber.ops.run import job as run_service
from amber.ops.run.fleet import fleet_view
from amber.repository.run_records import FleetRecord, RunEntry, record_names
from amber.services import fleet, session
from tests.ops.test_run import Notes, load, make_config, noted


def test_a_run_publishes_its_record_and_the_view_shows_every_host(tmp_path: Path) -> None:
    cfg = load(make_config(tmp_path, 'schedule = "daily"'))
    run_service.run_jobs(cfg, ["home"], run_service.RunOptions())
    [result] = run_service.run_jobs(cfg, ["home"], run_service.RunOptions())
    assert result.status == "success"
    passwords = session.PasswordSource(password_file=str(tmp_path / "pass"))
    with session.opened(str(tmp_path / "main"), passwords, lock=False) as repo:
        assert len(record_names(repo)) == 1  # the second run replaced the first run's record
        old = time.time() - 5 * 86400  # another host that stopped reporting five days ago
        fleet.publish(repo, FleetRecord("far-away", "home", old, 86400.0, "protected", [],
                                        [RunEntry(old - 60, old, "success", 10, 1)]), old)  # fmt: skip
    view = fleet_view(cfg, passwords)
    rows = {(r.repository, r.record.host): r for r in view.rows}
    ours = rows[("main", socket.gethostname())]
    assert ours.record.job == "home" and not ours.stale
    assert [r.status for r in ours.record.runs] == ["success", "success"]
    assert ours.record.verdict in ("at-risk", "unprotected")  # never verified by a drill
    assert rows[("main", "far-away")].stale
    assert any(p.startswith("gone:") for p in view.problems)  # an unreachable repository is named
    assert not any(p.startswith("usb:") for p in view.problems)  # offline and absent: not looked for


def test_a_run_that_cannot_reach_its_repository_writes_no_record(tmp_path: Path) -> None:
    path = make_config(tmp_path)
    path.write_text(path.read_text().replace('repository = "main"', 'repository = "gone"'))
    collected = Notes()
    [result] = run_service.run_jobs(load(path), ["home"], noted(collected))
    notes = collected.lines
    assert result.status == "failed"
    assert not any("run record" in n for n in notes)
