"""pg_dump under a live writer, stored by `amber run`, loaded back by `amber db restore` (a real server)."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from amber.cancel import CancelToken
from amber.errors import Interrupted
from amber.sources.databases.dump import open_dump
from amber.sources.databases.spec import DatabaseSpec
from tests.conftest import AmberCli, is_root
from tests.receivers import free_port
from tests.sources.databases.jobs import ACCOUNTS, START_BALANCE, TOTAL, MoneyMover, job_config

PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
AS_POSTGRES = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"] if is_root() else []


@dataclass
class Server:
    bin: Path
    socket_dir: Path
    port: int

    def psql(self, sql: str, db: str = "shop") -> str:
        done = subprocess.run(
            [str(self.bin / "psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
             "-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres", "-d", db, "-c", sql],
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        return done.stdout.strip()

    def mover(self) -> MoneyMover:
        proc = subprocess.Popen(
            [str(self.bin / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(self.socket_dir),
             "-p", str(self.port), "-U", "postgres", "-d", "shop", "-f", "-"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        assert proc.stdin is not None
        stdin = proc.stdin

        def transfer(a: int, b: int, amount: int) -> None:
            if proc.poll() is not None:
                raise RuntimeError(f"psql exited {proc.returncode}")
            stdin.write(
                f"BEGIN; UPDATE accounts SET balance = balance - {amount} WHERE id = {a}; "
                f"UPDATE accounts SET balance = balance + {amount} WHERE id = {b}; COMMIT;\n"
            )
            stdin.flush()

        return MoneyMover(transfer, lambda: (stdin.close(), proc.wait(timeout=30)))


def run_as_postgres(cmd: list[str]) -> None:
    subprocess.run([*AS_POSTGRES, *cmd], check=True, capture_output=True, timeout=120, cwd="/")


@pytest.fixture
def postgres() -> Iterator[Server]:
    if not PG_BIN:
        pytest.skip("PostgreSQL is not installed (scripts/test.sh installs it)")
    pgbin = Path(PG_BIN[-1])
    base = Path(
        tempfile.mkdtemp(prefix="amber-pgdump-")
    )  # outside pytest's 0700 tree: postgres must reach it
    os.chmod(base, 0o755)
    if is_root():
        shutil.chown(base, "postgres", "postgres")
    data = base / "data"
    server = Server(pgbin, base, free_port())
    try:
        run_as_postgres(
            [str(pgbin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
        )
        options = f"-p {server.port} -k {base} -c listen_addresses=''"
        run_as_postgres([str(pgbin / "pg_ctl"), "-D", str(data), "-w", "-l", str(base / "log"), "-o", options,
                         "start"])  # fmt: skip
        try:
            server.psql("CREATE DATABASE shop", db="postgres")
            server.psql(
                "CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);"
                f"INSERT INTO accounts SELECT g, {START_BALANCE} FROM generate_series(1, {ACCOUNTS}) g;"
                "CREATE TABLE filler AS SELECT g AS n, md5(g::text) AS pad FROM generate_series(1, 50000) g"
            )
            yield server
        finally:
            run_as_postgres([str(pgbin / "pg_ctl"), "-D", str(data), "-w", "-m", "immediate", "stop"])
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_pg_dump_under_a_writer_restores_with_the_sum_intact(
    tmp_path: Path, postgres: Server
) -> None:  # fmt: skip
    cfg = job_config(
        tmp_path,
        f"""
[[jobs.dbs.databases]]
type = "postgresql"
name = "shop"
host = "{postgres.socket_dir}"
port = {postgres.port}
user = "postgres"
globals = true
""",
    )
    cli = AmberCli(tmp_path / "main", tmp_path)
    postgres.psql("CREATE ROLE shop_reader LOGIN", db="postgres")
    mover = postgres.mover()
    with mover:
        while mover.transfers < 200:
            pass
        cli.run("--config", str(cfg), "run", "dbs")
    assert postgres.psql("SELECT sum(balance) FROM accounts") == str(TOTAL)
    assert postgres.psql("SELECT count(*) FROM accounts WHERE balance <> 1000") != "0"  # money did move

    listed = json.loads(cli.run("db", "list", "latest", "--json").stdout)
    assert [(d["kind"], d["name"], d["format"]) for d in listed] == [("postgresql", "shop", "custom")]
    server = f"{str(postgres.socket_dir).strip('/').replace('/', '_')}:{postgres.port}:postgres"
    globals_sql = cli.run("dump", "latest", f"/databases/postgresql-globals/{server}.sql").stdout
    assert "CREATE ROLE shop_reader" in globals_sql
    connect = ["--host", str(postgres.socket_dir), "--port", str(postgres.port), "--user", "postgres"]
    cli.run("db", "restore", "latest", "shop", "--to", "shop_copy", *connect)
    assert (
        postgres.psql("SELECT sum(balance), count(*) FROM accounts", db="shop_copy") == f"{TOTAL}|{ACCOUNTS}"
    )
    assert postgres.psql("SELECT count(*) FROM filler", db="shop_copy") == "50000"

    refused = cli.run("db", "restore", "latest", "shop", "--to", "shop_copy", *connect, check=False)
    assert refused.returncode == 35 and "already holds tables" in refused.stderr
    postgres.psql("UPDATE accounts SET balance = 0", db="shop_copy")
    cli.run("db", "restore", "latest", "shop", "--to", "shop_copy", "--yes", *connect)
    assert postgres.psql("SELECT sum(balance) FROM accounts", db="shop_copy") == str(TOTAL)


@pytest.mark.slow
def test_a_pg_dump_that_fails_writes_no_snapshot(tmp_path: Path, postgres: Server) -> None:
    cfg = job_config(
        tmp_path,
        f"""
[[jobs.dbs.databases]]
type = "postgresql"
name = "no_such_db"
host = "{postgres.socket_dir}"
port = {postgres.port}
user = "postgres"
""",
    )
    cli = AmberCli(tmp_path / "main", tmp_path)
    result = cli.run("--config", str(cfg), "run", "dbs", check=False)
    assert result.returncode == 34 and "no_such_db" in result.stderr, result.stderr
    assert json.loads(cli.run("snapshots", "--json").stdout) == []


@pytest.mark.slow
def test_a_cancel_stops_the_dump_as_interrupted(postgres: Server) -> None:
    spec = DatabaseSpec(
        "postgresql", "shop", host=str(postgres.socket_dir), port=postgres.port, user="postgres"
    )
    token = CancelToken()
    with pytest.raises(Interrupted), open_dump(spec, token) as stream:
        assert stream.read(5) == b"PGDMP"  # the custom format's magic: a real dump is under way
        token.cancel(Interrupted())
        stream.read()


@pytest.mark.slow
def test_a_dump_blocked_by_a_lock_times_out_and_writes_no_snapshot(tmp_path: Path, postgres: Server) -> None:
    cfg = job_config(
        tmp_path,
        f"""
[[jobs.dbs.databases]]
type = "postgresql"
name = "shop"
host = "{postgres.socket_dir}"
port = {postgres.port}
user = "postgres"
timeout = "2s"
""",
    )
    cli = AmberCli(tmp_path / "main", tmp_path)
    locker = subprocess.Popen(
        [str(postgres.bin / "psql"), "-X", "-q", "-A", "-t", "-h", str(postgres.socket_dir),
         "-p", str(postgres.port), "-U", "postgres", "-d", "shop"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert locker.stdin is not None and locker.stdout is not None
    try:  # pg_dump waits for ACCESS SHARE on every table: an ACCESS EXCLUSIVE lock stalls it silently
        locker.stdin.write("BEGIN; LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE; SELECT 'locked';\n")
        locker.stdin.flush()
        assert locker.stdout.readline().strip() == "locked"
        result = cli.run("--config", str(cfg), "run", "dbs", check=False, timeout=120)
    finally:
        locker.stdin.close()
        locker.wait(timeout=30)
    assert result.returncode == 34, result.stderr
    assert "timed out after 2s" in result.stderr and "no snapshot was written" in result.stderr
    assert json.loads(cli.run("snapshots", "--json").stdout) == []
    # The killed dump's server session notices its client is gone once the lock is free.
    sessions = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump'"
    deadline = time.monotonic() + 60
    while postgres.psql(sessions) != "0":
        assert time.monotonic() < deadline, "the timed-out dump's session never ended"
        time.sleep(0.2)


@pytest.mark.slow
def test_a_plain_dump_restores_over_a_non_empty_database_with_yes(tmp_path: Path, postgres: Server) -> None:
    postgres.psql("CREATE SCHEMA extra; CREATE TABLE extra.notes (t text);"
                  "INSERT INTO extra.notes VALUES ('kept');"
                  "SELECT lo_from_bytea(0, 'a large object')")  # fmt: skip
    cfg = job_config(
        tmp_path,
        f"""
[[jobs.dbs.databases]]
type = "postgresql"
name = "shop"
format = "plain"
host = "{postgres.socket_dir}"
port = {postgres.port}
user = "postgres"
""",
    )
    cli = AmberCli(tmp_path / "main", tmp_path)
    cli.run("--config", str(cfg), "run", "dbs")
    assert [d["format"] for d in json.loads(cli.run("db", "list", "latest", "--json").stdout)] == ["plain"]
    public_acl = "SELECT nspowner::regrole, nspacl FROM pg_namespace WHERE nspname = 'public'"
    before = postgres.psql(public_acl)
    postgres.psql("UPDATE accounts SET balance = 0; DELETE FROM extra.notes; CREATE TABLE stray (x int);"
                  "CREATE SCHEMA later; CREATE TABLE later.t (x int)")  # fmt: skip
    connect = ["--host", str(postgres.socket_dir), "--port", str(postgres.port), "--user", "postgres"]
    refused = cli.run("db", "restore", "latest", "shop", "--to", "shop", *connect, check=False)
    assert refused.returncode == 35

    cli.run("db", "restore", "latest", "shop", "--to", "shop", "--yes", *connect)
    assert postgres.psql("SELECT sum(balance), count(*) FROM accounts") == f"{TOTAL}|{ACCOUNTS}"
    assert postgres.psql("SELECT t FROM extra.notes") == "kept"
    assert postgres.psql("SELECT count(*) FROM pg_largeobject_metadata") == "1"
    assert postgres.psql("SELECT count(*) FROM pg_class WHERE relname = 'stray'") == "0"  # the dump's state
    assert postgres.psql("SELECT count(*) FROM pg_namespace WHERE nspname = 'later'") == "0"
    assert postgres.psql(public_acl) == before  # public keeps its owner and grants


@pytest.mark.slow
def test_a_failing_plain_restore_leaves_the_target_as_it_was(tmp_path: Path, postgres: Server) -> None:
    cfg = job_config(
        tmp_path,
        f"""
[[jobs.dbs.databases]]
type = "postgresql"
name = "shop"
format = "plain"
host = "{postgres.socket_dir}"
port = {postgres.port}
user = "postgres"
""",
    )
    cli = AmberCli(tmp_path / "main", tmp_path)
    postgres.psql("CREATE ROLE gone_owner NOLOGIN", db="postgres")
    postgres.psql("ALTER TABLE filler OWNER TO gone_owner")
    cli.run("--config", str(cfg), "run", "dbs")  # the dump says: ALTER TABLE filler OWNER TO gone_owner
    postgres.psql("ALTER TABLE filler OWNER TO postgres; UPDATE accounts SET balance = 7")
    postgres.psql("DROP ROLE gone_owner", db="postgres")
    connect = ["--host", str(postgres.socket_dir), "--port", str(postgres.port), "--user", "postgres"]
    result = cli.run("db", "restore", "latest", "shop", "--to", "shop", "--yes", *connect, check=False)
    assert result.returncode == 34 and "gone_owner" in result.stderr, result.stderr
    # the clearing ran in the failed transaction too: everything is as it was
    assert postgres.psql("SELECT sum(balance), count(*) FROM accounts") == f"{7 * ACCOUNTS}|{ACCOUNTS}"
    assert postgres.psql("SELECT count(*) FROM filler") == "50000"
