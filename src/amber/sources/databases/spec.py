"""What a job's ``[[jobs.NAME.databases]]`` entry says, and where its dump lives in a snapshot."""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("postgresql", "mariadb", "sqlite")
FORMATS = {"postgresql": ("custom", "plain"), "mariadb": ("sql",), "sqlite": ("sqlite",)}
EXTENSIONS = {"custom": "pgdump", "plain": "sql", "sql": "sql", "sqlite": "sqlite"}
TOP = "databases"
DEFAULT_TIMEOUT = 6 * 3600.0  # generous: a hung dump must end some day, a slow one should not


@dataclass(frozen=True)
class DatabaseSpec:
    """One database to dump. Servers need ``name``; SQLite needs ``path`` (``name``: its file's stem).

    The password is only ever read from ``password_file`` and handed to the
    client in its environment (PGPASSWORD, MYSQL_PWD), never on its command line.
    """

    kind: str
    name: str
    path: str = ""  # SQLite: the live database file
    host: str = ""  # a host name, or a socket directory (PostgreSQL) / socket file (MariaDB)
    port: int | None = None
    user: str = ""
    password_file: str = ""
    options: tuple[str, ...] = ()  # extra arguments for the dump program
    format: str = ""  # "" = the kind's first format
    globals: bool = False  # PostgreSQL: also ``pg_dumpall --globals-only`` (roles ...), once per server
    timeout: float = DEFAULT_TIMEOUT  # seconds a dump may take; then it is killed and the job fails

    @property
    def dump_format(self) -> str:
        return self.format or FORMATS[self.kind][0]

    @property
    def stream_path(self) -> str:
        """``/databases/<kind>/<name>.<ext>``: stable, so successive dumps deduplicate and diff."""
        return f"/{TOP}/{self.kind}/{self.name}.{EXTENSIONS[self.dump_format]}"


def globals_path(spec: DatabaseSpec) -> str:
    """``/databases/postgresql-globals/<server>.sql``: one per host, port and user."""
    server = f"{spec.host or 'default'}:{spec.port or 'default'}:{spec.user or 'default'}"
    return f"/{TOP}/postgresql-globals/{server.strip('/').replace('/', '_')}.sql"


def parse_stream_path(path: str) -> tuple[str, str, str] | None:
    """(kind, name, format) of a dump's path in a snapshot, or None if it is not one."""
    parts = path.strip("/").split("/")
    if len(parts) != 3 or parts[0] != TOP or parts[1] not in KINDS:
        return None
    kind, file = parts[1], parts[2]
    for fmt in FORMATS[kind]:
        ext = "." + EXTENSIONS[fmt]
        if file.endswith(ext) and len(file) > len(ext):
            return kind, file[: -len(ext)], fmt
    return None
