"""``[[jobs.NAME.databases]]``: the databases a job dumps (issue 15 §1, sources/databases)."""

from __future__ import annotations

import os
from typing import Any

from amber.ops.config import check as cc
from amber.ops.config.check import Reader
from amber.sources.databases.spec import DEFAULT_TIMEOUT, FORMATS, KINDS, DatabaseSpec

_KEYS = ("type", "name", "database", "path", "host", "port", "user", "password_file", "options", "format",
         "globals", "timeout")  # fmt: skip


def databases(r: Reader, t: dict[str, Any], p: cc.KeyPath) -> tuple[DatabaseSpec, ...]:
    path = (*p, "databases")
    specs = tuple(_database(r, entry, (*path, i)) for i, entry in enumerate(r.table_list(t, path)))
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        if spec.stream_path in seen:
            r.fail((*path, i), f"two databases would both be stored as {spec.stream_path}; set name")
        seen.add(spec.stream_path)
    return specs


def _database(r: Reader, t: dict[str, Any], p: cc.KeyPath) -> DatabaseSpec:
    r.only(t, p, _KEYS)
    kind = r.choice(t, p, "type", KINDS)
    if kind is None:
        r.fail(p, "missing key 'type'")
    path = r.string(t, p, "path") or ""
    name = r.string(t, p, "name") or r.string(t, p, "database") or ""
    if kind == "sqlite":
        if not path:
            r.fail(p, "a sqlite database needs 'path'")
        path = cc.expand(path)
        name = name or os.path.splitext(os.path.basename(path))[0]
    elif path:
        r.fail((*p, "path"), f"a {kind} database is named with 'name', not 'path'")
    if not name:
        r.fail(p, "missing key 'name'")
    if "/" in name or name in (".", "..") or name.startswith("-"):
        r.fail((*p, "name"), f"{name!r} cannot name a database here")
    fmt = r.choice(t, p, "format", FORMATS[kind]) or ""
    password_file = r.string(t, p, "password_file")
    dump_globals = r.boolean(t, p, "globals")
    if dump_globals and kind != "postgresql":
        r.fail((*p, "globals"), "only PostgreSQL has server-wide globals to dump")
    timeout_text = r.string(t, p, "timeout")
    timeout = cc.parse_duration(timeout_text) if timeout_text is not None else DEFAULT_TIMEOUT
    if timeout is None or timeout < 1:
        r.fail((*p, "timeout"), f"expected a duration of at least 1s like '2h', got {timeout_text!r}")
    return DatabaseSpec(
        kind=kind, name=name, path=path, host=r.string(t, p, "host") or "",
        port=r.integer(t, p, "port", 1, 65535), user=r.string(t, p, "user") or "",
        password_file=cc.expand(password_file) if password_file else "",
        options=r.strings(t, p, "options"), format=fmt, globals=dump_globals, timeout=timeout,
    )  # fmt: skip
