"""Consistent dumps of live databases as streams, without stopping the server or the application.

- PostgreSQL: ``pg_dump`` runs in one REPEATABLE READ transaction: a consistent
  picture while writers carry on.
- MariaDB/MySQL: ``--single-transaction`` does the same for InnoDB tables only;
  MyISAM/Aria tables are not consistent, so :func:`notes` names them.
- SQLite: ``VACUUM INTO`` a private temporary file inside one read transaction
  (WAL mode lets writers continue), then that file is streamed. A raw copy of a
  live database file is never taken: it can be torn.

A dump that takes longer than its ``timeout`` (a lock it waits for forever, a
server that stopped answering) is killed and fails the job: a hung dump must not
hold the job, and its lock, for good.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO
from urllib.parse import quote

from amber.cancel import CancelToken
from amber.errors import DatabaseError
from amber.sources.databases import clients
from amber.sources.databases.spec import DatabaseSpec

_TRANSACTIONAL = ("InnoDB", "XtraDB", "RocksDB", "TokuDB")


def dump_argv(spec: DatabaseSpec) -> list[str]:
    """The dump command, without any password."""
    name = clients.check_name(spec.name)
    if spec.kind == "postgresql":
        fmt = "--format=custom" if spec.dump_format == "custom" else "--format=plain"
        args = [fmt, *clients.connection_args(spec), *spec.options, f"--dbname={name}"]
        return [clients.program("pg_dump"), *args]
    if spec.kind == "mariadb":
        return [clients.program("mariadb-dump"), *clients.connection_args(spec), "--single-transaction",
                "--routines", "--events", "--triggers", "--hex-blob", *spec.options, name]  # fmt: skip
    raise DatabaseError(f"{spec.kind} databases are not dumped by a command")


@contextmanager
def open_dump(spec: DatabaseSpec, cancel: CancelToken | None = None) -> Iterator[IO[bytes]]:
    """The dump's bytes; raises DatabaseError on leaving if the dump did not finish cleanly.

    ``cancel`` kills the dump program at once: a stalled dump must not hold up a stop.
    """
    if spec.kind == "sqlite":
        with _sqlite_copy(spec) as stream:
            yield stream
        return
    with _command_stream(dump_argv(spec), spec, f"{spec.kind} database {spec.name!r}", cancel) as stream:
        yield stream


@contextmanager
def open_globals(spec: DatabaseSpec, cancel: CancelToken | None = None) -> Iterator[IO[bytes]]:
    """``pg_dumpall --globals-only`` of the server ``spec`` connects to: roles and tablespaces."""
    argv = [clients.program("pg_dumpall"), "--globals-only", *clients.connection_args(spec)]
    with _command_stream(argv, spec, "PostgreSQL globals", cancel) as stream:
        yield stream


@contextmanager
def _command_stream(
    argv: list[str], spec: DatabaseSpec, what: str, cancel: CancelToken | None
) -> Iterator[IO[bytes]]:  # fmt: skip
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors,
                                    env=clients.env(spec))  # fmt: skip
        except OSError as exc:
            raise DatabaseError(f"cannot dump {what}: cannot run {argv[0]}: {exc.strerror}") from exc
        assert proc.stdout is not None
        if cancel is not None:
            cancel.on_cancel(proc.kill)  # a no-op once the dump has exited
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            proc.kill()

        deadline = threading.Timer(spec.timeout, expire)
        deadline.daemon = True
        deadline.start()
        try:
            yield proc.stdout
            proc.stdout.read()  # a reader that stopped early must not pass for a complete dump
            code = proc.wait()
            if cancel is not None:
                cancel.check()  # killed by the cancel: report that, not the exit status
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            deadline.cancel()
            proc.stdout.close()
        if code != 0 and expired.is_set():
            raise DatabaseError(_timed_out(what, spec))
        if code != 0:
            errors.seek(0)
            problem = clients.last_line(errors.read())
            raise DatabaseError(f"dump of {what} failed ({os.path.basename(argv[0])} exit {code}): {problem}")


def _timed_out(what: str, spec: DatabaseSpec) -> str:
    return (f"dump of {what} timed out after {_duration(spec.timeout)} (its `timeout`) and was stopped; "
            "no snapshot was written")  # fmt: skip


def _duration(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


@contextmanager
def _sqlite_copy(spec: DatabaseSpec) -> Iterator[IO[bytes]]:
    if not os.path.isfile(spec.path):
        raise DatabaseError(f"SQLite database {spec.path} does not exist")
    with tempfile.TemporaryDirectory(prefix="amber-sqlite-") as scratch:  # mode 0700: the copy is private
        copy = os.path.join(scratch, "copy.db")
        started = time.monotonic()
        try:
            # mode=rw: never create a missing database; busy_timeout: wait out a writer's lock
            con = sqlite3.connect(f"file:{quote(os.path.abspath(spec.path))}?mode=rw", uri=True,
                                  timeout=min(60.0, spec.timeout))  # fmt: skip
            deadline = threading.Timer(spec.timeout, con.interrupt)
            deadline.daemon = True
            deadline.start()
            try:
                con.execute("VACUUM INTO ?", (copy,))
            finally:
                deadline.cancel()
                con.close()
        except sqlite3.Error as exc:
            if time.monotonic() - started >= spec.timeout:
                raise DatabaseError(_timed_out(f"SQLite database {spec.path}", spec)) from exc
            raise DatabaseError(f"cannot copy SQLite database {spec.path}: {exc}") from exc
        with open(copy, "rb") as stream:
            yield stream


def notes(spec: DatabaseSpec) -> list[str]:
    """Warnings about what the dump cannot make consistent (MariaDB's non-transactional tables)."""
    if spec.kind != "mariadb":
        return []
    sql = ("SELECT table_name, engine FROM information_schema.tables WHERE table_schema = "
           f"{clients.sql_string(spec.kind, spec.name)} AND table_type = 'BASE TABLE' AND engine NOT IN "
           f"({', '.join(clients.sql_string(spec.kind, e) for e in _TRANSACTIONAL)})")  # fmt: skip
    rows = clients.query(spec, sql, "information_schema")
    if not rows:
        return []
    tables = ", ".join(r.replace("\t", " (") + ")" for r in rows[:5]) + (" ..." if len(rows) > 5 else "")
    return [f"mariadb database {spec.name!r}: {len(rows)} non-transactional table(s) are not dumped "
            f"consistently while written: {tables}"]  # fmt: skip
