"""Point-in-time recovery with a real PostgreSQL: amber as archive_command and restore_command.

The server runs as ``postgres`` and calls ``python -m amber pg wal-push`` itself. Our
Python lives under /root (mode 0700) on the test machines, so when the tests run as root
the server gets the one capability that lets it read there (CAP_DAC_READ_SEARCH, as an
ambient capability its children inherit); the repository is owned by ``postgres``.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from amber.services import session
from tests.conftest import PASSWORD, AmberCli, is_root
from tests.receivers import free_port
from tests.sources.databases.jobs import ACCOUNTS, START_BALANCE, TOTAL
from tests.sources.databases.test_postgresql_dump import PG_BIN, Server

AS_POSTGRES = (
    [
        "setpriv",
        "--reuid=postgres",
        "--regid=postgres",
        "--init-groups",
        "--inh-caps=+dac_read_search",
        "--ambient-caps=+dac_read_search",
    ]
    if is_root()
    else []
)
SRC = str(Path(__file__).resolve().parents[3] / "src")


def as_postgres(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AS_POSTGRES, *cmd], check=check, capture_output=True, text=True, timeout=120, cwd="/"
    )


@dataclass
class Archive:
    base: Path
    repo: Path
    password_file: Path

    def amber(self, *args: str) -> str:
        """A shell command line running this checkout's amber on the archive, as the server would."""
        env = [
            f"PYTHONPATH={SRC}",
            f"XDG_CACHE_HOME={self.base / 'cache'}",
            f"XDG_STATE_HOME={self.base / 'state'}",
            f"XDG_CONFIG_HOME={self.base / 'config'}",
        ]
        argv = [
            sys.executable,
            "-m",
            "amber",
            "-r",
            str(self.repo),
            "--password-file",
            str(self.password_file),
        ]
        return "env " + " ".join(shlex.quote(a) for a in [*env, *argv, *args])


def start(pgbin: Path, data: Path, socket_dir: Path, port: int, *settings: str) -> Server:
    options = " ".join([f"-p {port}", f"-k {socket_dir}", "-c listen_addresses=''", *settings])
    as_postgres(
        [
            str(pgbin / "pg_ctl"),
            "-D",
            str(data),
            "-w",
            "-t",
            "120",
            "-l",
            str(data.parent / f"{data.name}.log"),
            "-o",
            options,
            "start",
        ]
    )
    return Server(pgbin, socket_dir, port)


def stop(pgbin: Path, data: Path) -> None:
    as_postgres([str(pgbin / "pg_ctl"), "-D", str(data), "-w", "-m", "immediate", "stop"], check=False)


@pytest.fixture
def archive() -> Iterator[Archive]:
    if not PG_BIN:
        pytest.skip("PostgreSQL is not installed (scripts/test.sh installs it)")
    base = Path(tempfile.mkdtemp(prefix="amber-pitr-"))  # outside pytest's 0700 tree: postgres must reach it
    os.chmod(base, 0o755)
    arch = Archive(base, base / "repo", base / "pass")
    arch.password_file.write_text(PASSWORD + "\n")
    session.create(str(arch.repo), PASSWORD.encode()).close()
    try:
        if is_root():
            for path in (base, *base.rglob("*")):
                shutil.chown(path, "postgres", "postgres")
        yield arch
    finally:
        shutil.rmtree(base, ignore_errors=True)


def wait_archived(server: Server, segment: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = server.psql(
            "SELECT coalesce(last_archived_wal, ''), failed_count, "
            "coalesce(last_failed_wal, '') FROM pg_stat_archiver",
            db="postgres",
        )
        last, _failed, _which = row.split("|")
        if last >= segment:
            return
        time.sleep(0.2)
    raise AssertionError(f"{segment} was not archived in time: {row}")


def switch(server: Server) -> str:
    """Close the current WAL segment so that PostgreSQL archives it; returns its name."""
    return server.psql("SELECT pg_walfile_name(pg_switch_wal())", db="postgres")


def archiving_server(archive: Archive) -> tuple[Path, Path, Server]:
    """A new cluster whose archive_command is amber's wal-push into ``archive``, started."""
    pgbin = Path(PG_BIN[-1])
    data = archive.base / "data"
    as_postgres([str(pgbin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
    with open(data / "postgresql.conf", "a") as conf:
        conf.write(f"\narchive_mode = on\narchive_command = {_sql(archive.amber('pg', 'wal-push', '%p'))}\n")
    return pgbin, data, start(pgbin, data, archive.base, free_port())


@pytest.mark.slow
def test_point_in_time_restore_shows_exactly_the_rows_committed_before_the_target(
    tmp_path: Path, archive: Archive
) -> None:
    pgbin, data, server = archiving_server(archive)
    restored = archive.base / "restored"
    try:
        server.psql("CREATE DATABASE shop", db="postgres")
        server.psql(
            "CREATE TABLE ledger (id int PRIMARY KEY, phase text NOT NULL);"
            "INSERT INTO ledger SELECT g, 'before-base' FROM generate_series(1, 100) g;"
            "CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);"
            f"INSERT INTO accounts SELECT g, {START_BALANCE} FROM generate_series(1, {ACCOUNTS}) g"
        )
        cli = AmberCli(archive.repo, tmp_path)
        connect = ["--host", str(archive.base), "--port", str(server.port), "--user", "postgres"]
        with server.mover() as mover:  # money moves during the base backup and across the target
            taken = json.loads(cli.run("pg", "basebackup", *connect, "--json").stdout)
            assert taken["timeline"] == 1 and taken["start_lsn"] and taken["stop_lsn"]

            server.psql("INSERT INTO ledger SELECT g, 'before-target' FROM generate_series(101, 200) g")
            wait_archived(server, switch(server))
            time.sleep(1.1)
            target = server.psql("SELECT clock_timestamp()", db="postgres")  # the server's clock and offset
            time.sleep(1.1)
            server.psql("INSERT INTO ledger SELECT g, 'after-target' FROM generate_series(201, 300) g")
        assert mover.transfers > 0
        last = switch(server)
        wait_archived(server, last)

        # the contract PostgreSQL relies on, with a real segment it archived
        listed = json.loads(cli.run("pg", "list", "--json").stdout)
        assert listed[0]["cluster"] == "main" and listed[0]["gaps"] == [] and listed[0]["wal_files"] >= 3
        segment = tmp_path / last
        shutil.copyfile(data / "pg_wal" / last, segment)  # still there: no checkpoint since
        assert cli.run("pg", "wal-push", str(segment)).returncode == 0  # archived again, same bytes: fine
        with open(segment, "r+b") as f:
            f.seek(8192)
            f.write(b"tampered")
        assert cli.run("pg", "wal-push", str(segment), check=False).returncode == 40
        missing = cli.run("pg", "wal-get", "0000000100000000000000FF", str(tmp_path / "nope"), check=False)
        assert missing.returncode == 41 and not (tmp_path / "nope").exists()

        restore_command = archive.amber("pg", "wal-get", "%f", "%p")
        cli.run(
            "pg",
            "restore",
            "--to",
            str(restored),
            "--target-time",
            target,
            "--restore-command",
            restore_command,
        )
        refused = cli.run("pg", "restore", "--to", str(restored), "--restore-command", "true", check=False)
        assert refused.returncode == 35  # a non-empty data directory is never written into
        if is_root():
            for path in (restored, *restored.rglob("*")):
                shutil.chown(path, "postgres", "postgres")
        copy = start(pgbin, restored, archive.base, free_port(), "-c archive_mode=off")
        try:
            deadline = time.monotonic() + 60
            while copy.psql("SELECT pg_is_in_recovery()", db="postgres") == "t":
                assert time.monotonic() < deadline, "recovery did not finish"
                time.sleep(0.2)
            phases = copy.psql("SELECT phase || ':' || count(*) FROM ledger GROUP BY phase ORDER BY phase")
            assert phases.splitlines() == ["before-base:100", "before-target:100"]
            assert copy.psql("SELECT sum(balance), count(*) FROM accounts") == f"{TOTAL}|{ACCOUNTS}"
            assert copy.psql("SELECT count(*) FROM accounts WHERE balance <> 1000") != "0"  # money had moved
        finally:
            stop(pgbin, restored)
    finally:
        stop(pgbin, data)


def _sql(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@pytest.mark.slow
def test_an_unreachable_repository_fails_the_push_and_archiving_catches_up(
    archive: Archive, tmp_path: Path
) -> None:
    pgbin, data, server = archiving_server(archive)
    away = archive.base / "repo-away"
    try:
        server.psql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g", db="postgres")
        wait_archived(server, switch(server))
        os.rename(archive.repo, away)  # the NAS went away
        server.psql("INSERT INTO t SELECT g FROM generate_series(1, 1000) g", db="postgres")
        segment = switch(server)  # a switch with nothing written since the last one would archive nothing
        deadline = time.monotonic() + 60
        while int(server.psql("SELECT failed_count FROM pg_stat_archiver", db="postgres")) == 0:
            assert time.monotonic() < deadline, "the push did not fail"
            time.sleep(0.2)
        assert (data / "pg_wal" / segment).exists()  # PostgreSQL kept it
        os.rename(away, archive.repo)
        wait_archived(server, segment)  # PostgreSQL retried and the archive caught up
        cli = AmberCli(archive.repo, tmp_path)
        listed = json.loads(cli.run("pg", "list", "--json").stdout)
        assert listed[0]["last_segment"] >= segment and listed[0]["gaps"] == []
        cli.run("pg", "wal-get", segment, str(tmp_path / "seg"))
        assert (tmp_path / "seg").stat().st_size == 16 << 20
    finally:
        stop(pgbin, data)


@pytest.mark.slow
def test_async_push_archives_the_backlog_in_one_batch(archive: Archive, tmp_path: Path) -> None:
    pgbin = Path(PG_BIN[-1])
    data = archive.base / "data"
    as_postgres([str(pgbin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
    with open(data / "postgresql.conf", "a") as conf:
        command = archive.amber("pg", "wal-push", "--async", "%p")
        conf.write(f"\narchive_mode = on\narchive_command = {_sql(command)}\n")
    server = start(pgbin, data, archive.base, free_port())
    away = archive.base / "repo-away"
    try:
        server.psql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g", db="postgres")
        wait_archived(server, switch(server))
        indexed = {p.name for p in (archive.repo / "index").iterdir()}
        os.rename(archive.repo, away)  # archiving stops: a backlog of ready segments builds up
        backlog = []
        for _ in range(3):
            server.psql("INSERT INTO t SELECT g FROM generate_series(1, 1000) g", db="postgres")
            backlog.append(switch(server))
        status = data / "pg_wal" / "archive_status"
        deadline = time.monotonic() + 60
        while not all((status / f"{s}.ready").exists() for s in backlog):
            assert time.monotonic() < deadline, "segments were not marked ready"
            time.sleep(0.2)
        os.rename(away, archive.repo)
        wait_archived(server, backlog[-1])
        new_index = {p.name for p in (archive.repo / "index").iterdir()} - indexed
        assert len(new_index) == 1  # the first call pushed the whole backlog, the others found markers
        markers = {p.name for p in (archive.base / "cache").rglob("*.ok")}
        assert {f"{s}.ok" for s in backlog} <= markers
        cli = AmberCli(archive.repo, tmp_path)
        assert "no errors found" in cli.run("pg", "check", "--read-data").stdout
        for segment in backlog:
            cli.run("pg", "wal-get", segment, str(tmp_path / "seg"))
            assert (tmp_path / "seg").stat().st_size == 16 << 20
    finally:
        stop(pgbin, data)
