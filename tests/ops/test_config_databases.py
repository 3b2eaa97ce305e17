"""[[jobs.NAME.databases]]: parsing, defaults, and one-line errors that name the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from amber.errors import ConfigError
from amber.ops.config.model import parse_config
from amber.sources.databases import clients, dump
from amber.sources.databases.spec import DatabaseSpec, parse_stream_path

BASE = """
[repositories.local]
url = "/srv/amber"
password_file = "/etc/amber/pass"

[jobs.shop]
paths = ["/srv/shop"]
"""


def job(databases: str) -> tuple[DatabaseSpec, ...]:
    return parse_config(BASE + databases, "config.toml").jobs["shop"].databases


def test_each_type_with_its_defaults() -> None:
    specs = job("""
[[jobs.shop.databases]]
type = "postgresql"
name = "shop"
host = "/run/postgresql"
port = 5433
user = "backup"
password_file = "/etc/amber/pg-pass"
options = ["--exclude-table=sessions"]

[[jobs.shop.databases]]
type = "mariadb"
database = "crm"
format = "sql"
timeout = "1h30m"

[[jobs.shop.databases]]
type = "sqlite"
path = "/var/lib/app/app.db"
""")
    assert [(s.kind, s.name, s.stream_path) for s in specs] == [
        ("postgresql", "shop", "/databases/postgresql/shop.pgdump"),
        ("mariadb", "crm", "/databases/mariadb/crm.sql"),
        ("sqlite", "app", "/databases/sqlite/app.sqlite"),
    ]
    assert [s.timeout for s in specs] == [6 * 3600, 5400, 6 * 3600]  # generous unless set
    pg = specs[0]
    assert (pg.port, pg.user, pg.password_file, pg.options) == (
        5433, "backup", "/etc/amber/pg-pass", ("--exclude-table=sessions",)
    )  # fmt: skip


def test_a_job_of_only_databases_is_valid() -> None:
    cfg = parse_config(BASE.replace('paths = ["/srv/shop"]', '[[jobs.shop.databases]]\ntype = "sqlite"\n'
                                    'path = "/a.db"'), "config.toml")  # fmt: skip
    assert cfg.jobs["shop"].paths == () and len(cfg.jobs["shop"].databases) == 1


D0 = r"jobs\.shop\.databases\[0\]"
DB_ERRORS = [
    ('name = "x"', D0 + r": missing key 'type'"),
    ('type = "oracle"\nname = "x"', D0 + r"\.type: expected one of postgresql, mariadb, sqlite"),
    ('type = "postgresql"', D0 + r": missing key 'name'"),
    ('type = "sqlite"', D0 + r": a sqlite database needs 'path'"),
    ('type = "mariadb"\npath = "/x"', D0 + r"\.path: a mariadb database is named with 'name'"),
    ('type = "postgresql"\nname = "a/b"', D0 + r"\.name: 'a/b' cannot name"),
    ('type = "postgresql"\nname = "x"\nformat = "tar"', D0 + r"\.format: expected one of custom, plain"),
    ('type = "postgresql"\nname = "x"\nport = 0', D0 + r"\.port: must be at least 1"),
    ('type = "postgresql"\nname = "x"\npassword = "pw"', D0 + r"\.password: unknown key"),
    ('type = "mariadb"\nname = "x"\nglobals = true', D0 + r"\.globals: only PostgreSQL has"),
    ('type = "mariadb"\nname = "x"\ntimeout = "soon"', D0 + r"\.timeout: expected a duration"),
    ('type = "mariadb"\nname = "x"\ntimeout = "0s"', D0 + r"\.timeout: expected a duration of at least 1s"),
    ('type = "sqlite"\npath = "/a/x.db"\n[[jobs.shop.databases]]\ntype = "sqlite"\npath = "/b/x.db"',
     r"jobs\.shop\.databases\[1\]: two databases would both be stored as /databases/sqlite/x\.sqlite"),
]  # fmt: skip


@pytest.mark.parametrize(("entry", "expected"), DB_ERRORS)
def test_errors_name_the_key(entry: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        job("[[jobs.shop.databases]]\n" + entry + "\n")
    assert re.match(r"config\.toml:\d+: " + expected, info.value.message), info.value.message


def test_stdin_command_and_databases_exclude_each_other() -> None:
    with pytest.raises(ConfigError, match="give either paths/databases or stdin_command"):
        entry = 'stdin_command = ["true"]\n[[jobs.shop.databases]]\ntype = "sqlite"\npath = "/a.db"'
        parse_config(BASE.replace('paths = ["/srv/shop"]', entry), "config.toml")


@pytest.mark.parametrize("spec", [
    DatabaseSpec("postgresql", "shop"), DatabaseSpec("postgresql", "shop", format="plain"),
    DatabaseSpec("mariadb", "crm"), DatabaseSpec("sqlite", "app", path="/x/app.db"),
    DatabaseSpec("postgresql", "we.ird name"),
])  # fmt: skip
def test_stream_paths_parse_back(spec: DatabaseSpec) -> None:
    assert parse_stream_path(spec.stream_path) == (spec.kind, spec.name, spec.dump_format)


NOT_DUMPS = ["/databases/oracle/x.sql", "/databases/postgresql/x.txt", "/databases/x.sql",
             "/other/postgresql/x.pgdump", "/databases/postgresql/.pgdump"]  # fmt: skip


@pytest.mark.parametrize("path", NOT_DUMPS)
def test_other_paths_are_not_dumps(path: str) -> None:
    assert parse_stream_path(path) is None


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_the_password_goes_to_the_environment_never_argv(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # fmt: skip
    monkeypatch.setenv("AMBER_PASSWORD", "repository secret")
    secret = tmp_path / "pw"
    secret.write_text("hunter2\n")
    spec = DatabaseSpec(kind, "db", host="/run/sock", port=5433, user="u", password_file=str(secret))
    try:
        argv = dump.dump_argv(spec)
    except Exception as exc:  # the client is not installed here: the argument builder still must not leak
        pytest.skip(str(exc))
    assert not any("hunter2" in a for a in argv)
    variable = "PGPASSWORD" if kind == "postgresql" else "MYSQL_PWD"
    assert clients.env(spec)[variable] == "hunter2"
    assert "AMBER_PASSWORD" not in clients.env(spec)


@pytest.mark.parametrize(("kind", "value", "literal"), [
    ("postgresql", "it's", "'it''s'"), ("postgresql", "a\\b", "'a\\b'"),
    ("mariadb", "it's", "'it''s'"), ("mariadb", "a\\b", "'a\\\\b'"),
])  # fmt: skip
def test_sql_literals(kind: str, value: str, literal: str) -> None:
    assert clients.sql_string(kind, value) == literal
