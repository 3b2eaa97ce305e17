"""Choose a backend from a repository location string."""

from __future__ import annotations

from amber.errors import UsageError
from amber.storage.base import Backend
from amber.storage.local import LocalBackend


def open_backend(location: str) -> Backend:
    """Open ``location``: a plain path or ``local:PATH``. More schemes come later."""
    if not location:
        raise UsageError("no repository given: use -r/--repo or AMBER_REPOSITORY")
    if location.startswith("local:"):
        return LocalBackend(location[len("local:") :])
    scheme, sep, _ = location.partition(":")
    if sep and scheme in {"sftp", "s3", "rclone", "rest", "b2", "gs", "azure"}:
        raise UsageError(f"backend '{scheme}:' is not supported yet")
    return LocalBackend(location)
