"""amber: deduplicating, encrypted, verifiable backups."""

__version__ = "0.1.0"
