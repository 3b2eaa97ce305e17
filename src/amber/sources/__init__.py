"""Backup sources other than the live path: filesystem snapshots and database dumps (docs/design.md §2)."""
