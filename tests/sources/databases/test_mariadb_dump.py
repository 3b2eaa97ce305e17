"""mariadb-dump --single-transaction under a live writer, on a private mariadbd (unix socket, no network)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import AmberCli
from tests.sources.databases.jobs import ACCOUNTS, START_BALANCE, TOTAL, MoneyMover, job_config

PASSWORD = "s3cret with spaces"


@dataclass
class Server:
    socket: Path

    def sql(self, sql: str, db: str = "crm") -> str:
        done = subprocess.run(
            ["mariadb", "--no-defaults", f"--socket={self.socket}", "--user=root", "--batch",
             "--skip-column-names", db, "-e", sql],
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        return done.stdout.strip()

    def mover(self) -> MoneyMover:
        proc = subprocess.Popen(
            ["mariadb", "--no-defaults", f"--socket={self.socket}", "--user=root", "crm"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        assert proc.stdin is not None
        stdin = proc.stdin

        def transfer(a: int, b: int, amount: int) -> None:
            if proc.poll() is not None:
                raise RuntimeError(f"mariadb exited {proc.returncode}")
            take = f"UPDATE accounts SET balance = balance - {amount} WHERE id = {a}"
            give = f"UPDATE accounts SET balance = balance + {amount} WHERE id = {b}"
            stdin.write(f"START TRANSACTION; {take}; {give}; COMMIT;\n")
            stdin.flush()

        return MoneyMover(transfer, lambda: (stdin.close(), proc.wait(timeout=30)))


@pytest.fixture
def mariadb() -> Iterator[Server]:
    missing = [p for p in ("mariadbd", "mariadb-install-db", "mariadb", "mariadb-dump") if not _which(p)]
    if missing:
        pytest.skip(f"MariaDB is not installed ({', '.join(missing)} missing; scripts/test.sh installs it)")
    base = Path(tempfile.mkdtemp(prefix="amber-mariadb-"))
    data, socket = base / "data", base / "sock"
    subprocess.run(
        [_which("mariadb-install-db"), "--no-defaults", f"--datadir={data}", "--user=root",
         "--auth-root-authentication-method=normal", "--skip-test-db"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    server = subprocess.Popen(
        [_which("mariadbd"), "--no-defaults", f"--datadir={data}", f"--socket={socket}", "--skip-networking",
         "--user=root", f"--pid-file={base / 'pid'}", f"--log-error={base / 'log'}",
         "--innodb-buffer-pool-size=32M", "--skip-log-bin"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not socket.exists():
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mariadbd did not start: {(base / 'log').read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        s = Server(socket)
        s.sql("CREATE DATABASE crm", db="mysql")
        s.sql(f"CREATE TABLE accounts (id INT PRIMARY KEY, balance INT NOT NULL) ENGINE=InnoDB;"
              f"INSERT INTO accounts SELECT seq, {START_BALANCE} FROM seq_1_to_{ACCOUNTS};"
              "CREATE TABLE visits (n INT) ENGINE=MyISAM; INSERT INTO visits SELECT seq FROM seq_1_to_100;"
              f"CREATE USER 'amber'@'localhost' IDENTIFIED BY '{PASSWORD}';"
              "GRANT ALL ON *.* TO 'amber'@'localhost'")  # fmt: skip
        yield s
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def _which(name: str) -> str:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin") or ""


@pytest.mark.slow
def test_mariadb_dump_under_a_writer_restores_with_the_sum_intact(
    tmp_path: Path, mariadb: Server
) -> None:  # fmt: skip
    (tmp_path / "db-pass").write_text(PASSWORD + "\n")
    cfg = job_config(
        tmp_path,
        f"""
[[jobs.dbs.databases]]
type = "mariadb"
name = "crm"
host = "{mariadb.socket}"
user = "amber"
password_file = "{tmp_path / "db-pass"}"
""",
    )
    cli = AmberCli(tmp_path / "main", tmp_path)
    with mariadb.mover() as mover:
        while mover.transfers < 200:
            pass
        report = cli.run("--config", str(cfg), "run", "dbs").stderr
    assert mariadb.sql("SELECT sum(balance) FROM accounts") == str(TOTAL)
    assert "dbs: note: mariadb database 'crm': 1 non-transactional table(s)" in report  # the honest warning
    assert "visits (MyISAM)" in report

    listed = json.loads(cli.run("db", "list", "latest", "--json").stdout)
    assert [(d["kind"], d["name"], d["path"]) for d in listed] == [
        ("mariadb", "crm", "/databases/mariadb/crm.sql")
    ]
    connect = ["--host", str(mariadb.socket), "--user", "amber", "--password-file", str(tmp_path / "db-pass")]
    cli.run("--config", str(cfg), "db", "restore", "latest", "crm", "--to", "crm_copy", "--job", "dbs")
    assert mariadb.sql("SELECT sum(balance), count(*) FROM accounts", db="crm_copy") == f"{TOTAL}\t{ACCOUNTS}"
    assert mariadb.sql("SELECT count(*) FROM visits", db="crm_copy") == "100"

    refused = cli.run("db", "restore", "latest", "crm", "--to", "crm_copy", *connect, check=False)
    assert refused.returncode == 35 and "already holds tables" in refused.stderr
    mariadb.sql("UPDATE accounts SET balance = 0", db="crm_copy")
    cli.run("db", "restore", "latest", "crm", "--to", "crm_copy", "--yes", *connect)
    assert mariadb.sql("SELECT sum(balance) FROM accounts", db="crm_copy") == str(TOTAL)

    wrong = tmp_path / "wrong-pass"
    wrong.write_text("nope\n")
    bad = [*connect[:-1], str(wrong)]
    failed = cli.run("db", "restore", "latest", "crm", "--to", "crm_other", *bad, check=False)
    assert failed.returncode == 34 and "Access denied" in failed.stderr
