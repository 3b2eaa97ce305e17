"""Opening the catalog: the quick check (which reads the whole file) runs only when the
file changed since amber last checked or wrote it."""

from __future__ import annotations

import os
from pathlib import Path

from amber.catalog import store


def test_an_unchanged_catalog_is_not_checked_again(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    conn, notice = store.open_catalog("repo-a", path)
    assert notice is None
    with store.transaction(conn):
        conn.execute("INSERT INTO lineage(host, paths) VALUES ('h', '[]')")
    store.mark_checked(conn)  # what sync does after writing
    conn.close()
    assert store._checked_before(path)
    stamp = (tmp_path / "c.sqlite.checked").stat()
    assert oct(stamp.st_mode & 0o777) == "0o600"
    conn, notice = store.open_catalog("repo-a", path)
    conn.close()
    assert notice is None and store._checked_before(path)


def test_a_changed_file_is_checked_and_rebuilt_when_damaged(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    conn, _ = store.open_catalog("repo-a", path)
    store.mark_checked(conn)
    conn.close()
    size = path.stat().st_size
    with open(path, "r+b") as f:  # damage a b-tree page, then the file's size changes too
        f.seek(size - 4096)
        f.write(os.urandom(4096))
        f.truncate(size - 1024)
    assert not store._checked_before(path)
    conn, notice = store.open_catalog("repo-a", path)
    conn.close()
    assert notice is not None and "rebuilding" in notice


def test_another_repository_s_catalog_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    conn, _ = store.open_catalog("repo-a", path)
    store.mark_checked(conn)
    conn.close()
    conn, notice = store.open_catalog("repo-b", path)
    conn.close()
    assert notice is not None


def test_a_catalog_of_the_previous_schema_is_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    conn, _ = store.open_catalog("repo-a", path)
    with store.transaction(conn):
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(store.SCHEMA_VERSION - 1),))
    conn.close()
    conn, notice = store.open_catalog("repo-a", path)
    try:
        assert notice is not None and "rebuilding" in notice
        schema = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        assert schema == (str(store.SCHEMA_VERSION),)
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'index'")}
        assert {"ver_coarse", "name_key"} <= indexes and not {"ver_size", "ver_mtime", "name_ext"} & indexes
    finally:
        conn.close()
