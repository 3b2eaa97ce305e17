"""A backup suspended past its lease while a prune runs loses nothing it references (issue 12, §3).

Leases are shortened with ``AMBER_LEASE`` (refresh 0.3 s, lease 2 s) in both
processes. The backup deduplicates against an older snapshot, is stopped with
SIGSTOP, the older snapshot is forgotten and pruned while the backup's lock looks
stale (its packs are deleted), then the backup is resumed with SIGCONT. It must
either stop (its lease lapsed: exit 31) or write a snapshot that `check
--read-data` finds complete.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.cli.test_signals import popen
from tests.conftest import AmberCli

LEASE = {"AMBER_LEASE": "0.3,2"}
LEASE_LOST = 31


def packs(repo: Path) -> set[str]:
    return {p.name for p in (repo / "data").rglob("*") if p.is_file()}


@pytest.mark.slow
def test_a_backup_suspended_past_its_lease_during_a_prune_loses_nothing(
    cli: AmberCli, tmp_path: Path
) -> None:
    data = tmp_path / "dump.bin"
    data.write_bytes(os.urandom(3_000_000))
    cli.run("backup", "--stdin-from-command", "--", "cat", str(data))
    [older] = [p.name for p in (cli.repo / "snapshots").iterdir()]
    its_packs = packs(cli.repo)
    cli.env.update(LEASE)
    started = time.monotonic()
    proc = popen(cli, "backup", "--stdin-from-command", "--", "sh", "-c", f"cat {data}; sleep 6")
    deadline = time.monotonic() + 30
    while not list((cli.repo / "locks").iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    time.sleep(1.0)  # it has read (and deduplicated) the data by now
    proc.send_signal(signal.SIGSTOP)
    try:
        time.sleep(2.5)  # longer than the lease: its lock now looks stale
        pruned = cli.run("forget", older, "--prune")
        assert its_packs and not its_packs & packs(cli.repo), pruned.stdout  # the data it uses is gone
        time.sleep(max(0.0, 6.5 - (time.monotonic() - started)))  # its source has ended meanwhile
    finally:
        proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, LEASE_LOST), err
    if proc.returncode == LEASE_LOST:
        assert b"not refreshed" in err and list((cli.repo / "snapshots").iterdir()) == []
    assert list((cli.repo / "locks").iterdir()) == []
    del cli.env["AMBER_LEASE"]
    cli.run("check", "--read-data")  # whatever it wrote references only data that exists
