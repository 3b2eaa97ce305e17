"""SQLite dumps of a live WAL-mode database under a concurrent writer, through `amber run` and `amber db`."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import AmberCli
from tests.sources.databases.jobs import ACCOUNTS, START_BALANCE, TOTAL, MoneyMover, job_config


def make_bank(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)")
    rows = [(i, START_BALANCE) for i in range(1, ACCOUNTS + 1)]
    con.executemany("INSERT INTO accounts VALUES (?, ?)", rows)
    con.execute("CREATE TABLE filler (n INTEGER, pad BLOB)")
    con.executemany("INSERT INTO filler VALUES (?, randomblob(2000))", [(i,) for i in range(3000)])
    con.commit()
    con.close()


def sqlite_mover(path: Path) -> MoneyMover:
    con = sqlite3.connect(path, check_same_thread=False, timeout=30, isolation_level=None)

    def transfer(a: int, b: int, amount: int) -> None:
        con.execute("BEGIN IMMEDIATE")
        con.execute("UPDATE accounts SET balance = balance - ? WHERE id = ?", (amount, a))
        con.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?", (amount, b))
        con.execute("COMMIT")

    return MoneyMover(transfer)


def balances(path: Path) -> tuple[int, int, str]:
    con = sqlite3.connect(path)
    try:
        total, count = con.execute("SELECT sum(balance), count(*) FROM accounts").fetchone()
        return total, count, con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


@pytest.mark.slow
def test_live_sqlite_dump_restores_consistent_beside_the_jobs_paths(tmp_path: Path) -> None:
    live = tmp_path / "app" / "bank.db"
    live.parent.mkdir()
    make_bank(live)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "note.txt").write_text("kept beside the dump\n")
    cfg = job_config(tmp_path, f'[[jobs.dbs.databases]]\ntype = "sqlite"\npath = "{live}"\n', [str(docs)])
    cli = AmberCli(tmp_path / "main", tmp_path)
    with sqlite_mover(live) as mover:
        while mover.transfers < 50:
            pass
        cli.run("--config", str(cfg), "run", "dbs")
        during = mover.transfers
    assert mover.transfers > during >= 50  # the writer kept committing while the dump ran

    snaps = json.loads(cli.run("snapshots", "--json").stdout)
    assert len(snaps) == 1
    assert sorted(snaps[0]["paths"]) == sorted([str(docs), "/databases"])
    listed = json.loads(cli.run("db", "list", "latest", "--json").stdout)
    assert [(d["kind"], d["name"], d["path"]) for d in listed] == [
        ("sqlite", "bank", "/databases/sqlite/bank.sqlite")
    ]
    assert cli.run("dump", "latest", str(docs / "note.txt")).stdout == "kept beside the dump\n"

    target = tmp_path / "restored" / "bank.db"
    target.parent.mkdir()
    out = cli.run("db", "restore", "latest", "bank", "--to", str(target))
    assert "restored sqlite/bank" in out.stdout
    assert balances(target) == (TOTAL, ACCOUNTS, "ok")
    assert list(target.parent.iterdir()) == [target]  # no scratch file left

    again = cli.run("db", "restore", "latest", "sqlite/bank", "--to", str(target), check=False)
    assert again.returncode == 35 and "--yes" in again.stderr
    target.write_bytes(b"")  # an empty file holds nothing to lose
    cli.run("db", "restore", "latest", "bank", "--to", str(target))
    live.replace(tmp_path / "app" / "elsewhere.db")
    cli.run("db", "restore", "latest", "bank", "--to", str(live))
    assert balances(live)[0] == TOTAL


def test_a_failing_dump_fails_the_job_and_writes_no_snapshot(tmp_path: Path) -> None:
    good = tmp_path / "good.db"
    make_bank(good)
    cfg = job_config(tmp_path, f"""
[[jobs.dbs.databases]]
type = "sqlite"
path = "{good}"

[[jobs.dbs.databases]]
type = "sqlite"
path = "{tmp_path / 'missing.db'}"
""")
    cli = AmberCli(tmp_path / "main", tmp_path)
    result = cli.run("--config", str(cfg), "run", "dbs", check=False)
    assert result.returncode == 34, result.stderr
    assert "missing.db does not exist" in result.stderr
    assert json.loads(cli.run("snapshots", "--json").stdout) == []
    assert not (tmp_path / "missing.db").exists()  # never created by the dump


def test_unknown_dump_name_lists_what_the_snapshot_has(tmp_path: Path) -> None:
    live = tmp_path / "bank.db"
    make_bank(live)
    cfg = job_config(tmp_path, f'[[jobs.dbs.databases]]\ntype = "sqlite"\npath = "{live}"\nname = "ledger"\n')
    cli = AmberCli(tmp_path / "main", tmp_path)
    assert "job dbs: 1 database(s) -> main" in cli.run("--config", str(cfg), "config", "check").stdout
    cli.run("--config", str(cfg), "run", "dbs")
    result = cli.run("db", "restore", "latest", "shop", "--to", str(tmp_path / "x.db"), check=False)
    assert result.returncode == 2 and "sqlite/ledger" in result.stderr


@pytest.mark.slow
def test_a_sqlite_copy_blocked_by_an_exclusive_lock_times_out(tmp_path: Path) -> None:
    live = tmp_path / "locked.db"
    con = sqlite3.connect(live, isolation_level=None)
    con.execute("CREATE TABLE t (x)")  # rollback-journal mode: an EXCLUSIVE lock keeps readers out
    cfg = job_config(tmp_path, f'[[jobs.dbs.databases]]\ntype = "sqlite"\npath = "{live}"\ntimeout = "2s"\n')
    cli = AmberCli(tmp_path / "main", tmp_path)
    con.execute("BEGIN EXCLUSIVE")
    try:
        result = cli.run("--config", str(cfg), "run", "dbs", check=False, timeout=120)
    finally:
        con.execute("ROLLBACK")
        con.close()
    assert result.returncode == 34, result.stderr
    assert "timed out after 2s" in result.stderr, result.stderr
    assert json.loads(cli.run("snapshots", "--json").stdout) == []
