"""Consistent dumps of live databases (PostgreSQL, MariaDB/MySQL, SQLite) and their restore (design §12b)."""
