"""Finding and running the database servers' client programs with a password-free command line.

Every child gets :func:`amber.childenv.child_env` (amber's own secrets removed);
a configured password file is read here and passed as PGPASSWORD or MYSQL_PWD,
never as an argument (``ps`` shows arguments to every user).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

from amber.childenv import child_env
from amber.errors import DatabaseError, UsageError
from amber.sources.databases.spec import DatabaseSpec

_ALTERNATIVES = {"mariadb-dump": ("mariadb-dump", "mysqldump"), "mariadb": ("mariadb", "mysql")}


def program(name: str) -> str:
    """The path of client ``name``; Debian keeps PostgreSQL's newest version off PATH."""
    for candidate in _ALTERNATIVES.get(name, (name,)):
        found = shutil.which(candidate)
        if found:
            return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version)
    if versions:
        return versions[-1]
    raise DatabaseError(f"{name} is not installed (needed for {_kind_of(name)} databases)")


def _version(path: str) -> tuple[int, ...]:
    version = path.split("/")[4]
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def _kind_of(name: str) -> str:
    return "MariaDB/MySQL" if name.startswith("mariadb") else "PostgreSQL"


def _password(spec: DatabaseSpec) -> str | None:
    if not spec.password_file:
        return None
    try:
        with open(spec.password_file, encoding="utf-8") as f:
            return f.read().rstrip("\r\n")
    except OSError as exc:
        raise DatabaseError(f"cannot read password file {spec.password_file}: {exc.strerror}") from exc


def env(spec: DatabaseSpec) -> dict[str, str]:
    password = _password(spec)
    extra: dict[str, str] = {}
    if password is not None:
        extra["PGPASSWORD" if spec.kind == "postgresql" else "MYSQL_PWD"] = password
    return child_env(extra)


def connection_args(spec: DatabaseSpec) -> list[str]:
    """Where and as whom to connect; unset keys leave the client's own defaults (libpq, my.cnf)."""
    if spec.kind == "postgresql":
        args = ["--no-password"]
        args += [f"--host={spec.host}"] if spec.host else []
        args += [f"--port={spec.port}"] if spec.port else []
        return args + ([f"--username={spec.user}"] if spec.user else [])
    args = []
    if spec.host:
        args.append(f"--socket={spec.host}" if spec.host.startswith("/") else f"--host={spec.host}")
    args += [f"--port={spec.port}"] if spec.port else []
    return args + ([f"--user={spec.user}"] if spec.user else [])


def check_name(name: str) -> str:
    if not name or name.startswith("-") or "\0" in name:
        raise UsageError(f"invalid database name {name!r}")
    return name


def query(spec: DatabaseSpec, sql: str, database: str) -> list[str]:
    """Rows (tab-separated) of ``sql``, given on stdin so names never need shell or argv quoting."""
    if spec.kind == "postgresql":
        argv = [program("psql"), *connection_args(spec), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
                f"--dbname={database}", "-f", "-"]  # fmt: skip
    else:
        argv = [program("mariadb"), *connection_args(spec), "--batch", "--skip-column-names", database]
    try:
        done = subprocess.run(argv, input=sql.encode(), capture_output=True, env=env(spec), timeout=300,
                              check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DatabaseError(f"cannot run {os.path.basename(argv[0])}: {exc}") from exc
    if done.returncode != 0:
        raise DatabaseError(f"{os.path.basename(argv[0])} failed: {last_line(done.stderr)}")
    return [line for line in done.stdout.decode(errors="replace").splitlines() if line]


def last_line(stderr: bytes) -> str:
    lines = [x for x in stderr.decode(errors="replace").splitlines() if x.strip()]
    return lines[-1].strip() if lines else "no error message"


def sql_string(kind: str, value: str) -> str:
    """A single-quoted SQL literal; MariaDB also treats backslashes as escapes, PostgreSQL does not."""
    if kind != "postgresql":
        value = value.replace("\\", "\\\\")
    return "'" + value.replace("'", "''") + "'"
