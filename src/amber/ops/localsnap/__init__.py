"""A job's local filesystem snapshots: backing up from them, listing, cleanup, verify, rollback (issue 14)."""
