"""Anomaly scoring of backups (ransomware defence): pure functions (docs/design.md §2)."""
