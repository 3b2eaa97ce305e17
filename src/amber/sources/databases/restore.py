"""``amber db list`` and ``amber db restore``: find the dumps in a snapshot and load one into a target.

A server database is created when missing; one that already holds tables is
refused unless ``overwrite`` (then ``pg_restore --clean``; for a plain SQL dump,
which has no DROP statements, every schema and large object of the target is
dropped first, ``public`` recreated with its owner, grants and comment; MariaDB
dumps carry their own ``DROP TABLE IF EXISTS``). PostgreSQL loads in a single
transaction, the clearing included, so a failed restore leaves the target as it
was. SQLite is written beside the target, checked with ``PRAGMA integrity_check``
and renamed into place.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from amber.errors import DatabaseError, DatabaseNotEmpty, UsageError
from amber.repository import Repository
from amber.services.browse import dump, ls
from amber.sources.databases import clients
from amber.sources.databases.spec import TOP, DatabaseSpec, parse_stream_path

# Run before a plain dump in the same transaction: the dump creates objects without dropping them.
_CLEAR_PLAIN = rb"""
DO $amber$
DECLARE
  r record;
  public_owner text;
  public_acl aclitem[];
  public_comment text;
BEGIN
  SELECT nspowner::regrole::text, nspacl, obj_description(oid, 'pg_namespace')
    INTO public_owner, public_acl, public_comment FROM pg_namespace WHERE nspname = 'public';
  FOR r IN SELECT nspname FROM pg_namespace
           WHERE nspname NOT LIKE 'pg\_%' AND nspname <> 'information_schema' LOOP
    EXECUTE format('DROP SCHEMA %I CASCADE', r.nspname);
  END LOOP;
  PERFORM pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata;
  FOR r IN SELECT pubname FROM pg_publication LOOP
    EXECUTE format('DROP PUBLICATION %I', r.pubname);
  END LOOP;
  IF public_owner IS NOT NULL THEN
    EXECUTE format('CREATE SCHEMA public AUTHORIZATION %s', public_owner);
    IF public_acl IS NOT NULL THEN
      EXECUTE 'REVOKE ALL ON SCHEMA public FROM PUBLIC';
      FOR r IN SELECT grantee, privilege_type, is_grantable FROM aclexplode(public_acl) LOOP
        EXECUTE format('GRANT %s ON SCHEMA public TO %s%s', r.privilege_type,
                       CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE r.grantee::regrole::text END,
                       CASE WHEN r.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
      END LOOP;
    END IF;
    IF public_comment IS NOT NULL THEN
      EXECUTE format('COMMENT ON SCHEMA public IS %L', public_comment);
    END IF;
  END IF;
END
$amber$;
"""

_USER_RELATIONS = (
    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'"
)


@dataclass(frozen=True)
class DumpEntry:
    kind: str
    name: str
    format: str
    path: str
    size: int


def list_dumps(repo: Repository, ref: str) -> list[DumpEntry]:
    found = []
    for path, node in ls(repo, ref, "/" + TOP):
        parsed = parse_stream_path(os.fsdecode(path))
        if parsed is not None and node.type == "file":
            found.append(DumpEntry(*parsed, os.fsdecode(path), node.size))
    return found


def find_dump(repo: Repository, ref: str, name: str) -> DumpEntry:
    """``name``: ``shop`` or ``postgresql/shop`` when several kinds share the name."""
    dumps = list_dumps(repo, ref)
    matches = [d for d in dumps if name in (d.name, f"{d.kind}/{d.name}")]
    if not matches:
        have = ", ".join(f"{d.kind}/{d.name}" for d in dumps) or "none"
        raise UsageError(f"no database dump {name!r} in snapshot {ref} (it has: {have})")
    if len(matches) > 1:
        choices = ", ".join(f"{d.kind}/{d.name}" for d in matches)
        raise UsageError(f"{name!r} is ambiguous; give one of {choices}")
    return matches[0]


def restore_dump(repo: Repository, ref: str, entry: DumpEntry, target: DatabaseSpec, overwrite: bool) -> int:
    """Load ``entry`` into ``target`` (its ``name``, or its ``path`` for SQLite); returns dump bytes read."""
    if entry.kind != target.kind:
        raise UsageError(f"the dump is {entry.kind}, the target is {target.kind}")
    if entry.kind == "sqlite":
        return _restore_sqlite(repo, ref, entry, target.path, overwrite)
    clients.check_name(target.name)
    if entry.kind == "postgresql":
        argv, prelude = _prepare_postgresql(entry, target, overwrite)
    else:
        argv, prelude = _prepare_mariadb(target, overwrite), b""
    return _pipe(repo, ref, entry, argv, target, prelude)


def _prepare_postgresql(entry: DumpEntry, target: DatabaseSpec, overwrite: bool) -> tuple[list[str], bytes]:
    """The restore command, and SQL to run before the dump in its transaction."""
    lit = clients.sql_string("postgresql", target.name)
    exists = clients.query(target, f"SELECT 1 FROM pg_database WHERE datname = {lit}", "postgres")
    used = exists and int(clients.query(target, _USER_RELATIONS, target.name)[0]) > 0
    if used and not overwrite:
        raise DatabaseNotEmpty(f"database {target.name!r} already holds tables; give --yes to overwrite it")
    if not exists:
        ident = '"' + target.name.replace('"', '""') + '"'
        clients.query(target, f"CREATE DATABASE {ident}", "postgres")
    conn = clients.connection_args(target)
    if entry.format == "plain":
        return [clients.program("psql"), *conn, "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction",
                f"--dbname={target.name}", "-f", "-"], _CLEAR_PLAIN if used else b""  # fmt: skip
    clean = ["--clean", "--if-exists"] if used else []
    return [clients.program("pg_restore"), *conn, "--no-owner", "--exit-on-error", "--single-transaction",
            *clean, f"--dbname={target.name}"], b""  # fmt: skip


def _prepare_mariadb(target: DatabaseSpec, overwrite: bool) -> list[str]:
    lit = clients.sql_string("mariadb", target.name)
    rows = clients.query(target, f"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = {lit}",
                         "information_schema")  # fmt: skip
    if int(rows[0]) > 0 and not overwrite:
        raise DatabaseNotEmpty(f"database {target.name!r} already holds tables; give --yes to overwrite it")
    ident = "`" + target.name.replace("`", "``") + "`"
    clients.query(target, f"CREATE DATABASE IF NOT EXISTS {ident}", "information_schema")
    return [clients.program("mariadb"), *clients.connection_args(target), "--batch",
            f"--database={target.name}"]  # fmt: skip


def _pipe(
    repo: Repository, ref: str, entry: DumpEntry, argv: list[str], target: DatabaseSpec, prelude: bytes = b""
) -> int:  # fmt: skip
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors,
                                    env=clients.env(target))  # fmt: skip
        except OSError as exc:
            raise DatabaseError(f"cannot run {argv[0]}: {exc.strerror}") from exc
        assert proc.stdin is not None
        written = 0
        try:
            proc.stdin.write(prelude)
            written = dump(repo, ref, entry.path, proc.stdin)  # type: ignore[arg-type]
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the client stopped reading: its exit status and message say why
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        code = proc.wait()
        if code != 0:
            errors.seek(0)
            program = os.path.basename(argv[0])
            raise DatabaseError(f"restore into {target.name!r} failed ({program} exit {code}): "
                                f"{clients.last_line(errors.read())}")  # fmt: skip
    return written


def _restore_sqlite(repo: Repository, ref: str, entry: DumpEntry, path: str, overwrite: bool) -> int:
    if not path:
        raise UsageError("give the SQLite target as a file path")
    path = os.path.abspath(path)
    if os.path.exists(path) and os.path.getsize(path) > 0 and not overwrite:
        raise DatabaseNotEmpty(f"{path} exists; give --yes to replace it")
    folder = os.path.dirname(path)
    fd, scratch = tempfile.mkstemp(prefix=".amber-restore-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            written = dump(repo, ref, entry.path, out)
            out.flush()
            os.fsync(out.fileno())
        _check_sqlite(scratch)
        for stale in (path + "-wal", path + "-shm", path + "-journal"):  # the old file's, never the new one's
            if os.path.exists(stale):
                os.unlink(stale)
        os.replace(scratch, path)
        dirfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)
    except OSError as exc:
        raise DatabaseError(f"cannot write {path}: {exc.strerror}") from exc
    finally:
        if os.path.exists(scratch):
            os.unlink(scratch)
    return written


def _check_sqlite(path: str) -> None:
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            result = con.execute("PRAGMA integrity_check").fetchone()
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise DatabaseError(f"the restored SQLite database is unreadable: {exc}") from exc
    if not result or result[0] != "ok":
        raise DatabaseError(f"the restored SQLite database failed its integrity check: {result}")


def target_spec(
    entry: DumpEntry, to: str, configured: Sequence[DatabaseSpec] = (), **given: Any
) -> DatabaseSpec:  # fmt: skip
    """The restore target: ``to`` is a database name for servers, a file path for SQLite.

    Connection settings come from ``given`` (non-empty values only), else from the
    ``configured`` entry that wrote this dump (``db restore --job``), else the client's defaults.
    """
    same = [s for s in configured if (s.kind, s.name) == (entry.kind, entry.name)]
    base = same[0] if same else DatabaseSpec(kind=entry.kind, name=to)
    chosen = {k: v for k, v in given.items() if v}
    return replace(base, name=to, path=to if entry.kind == "sqlite" else "", format="", options=(), **chosen)
