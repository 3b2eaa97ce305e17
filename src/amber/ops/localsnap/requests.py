"""What `amber rollback` is asked and what it answers."""

from __future__ import annotations

from dataclasses import dataclass, field

from amber.sources.changes import Changes


@dataclass
class RollbackRequest:
    job: str
    to: str = "latest"  # a local snapshot name, or latest
    from_repo: str | None = None  # a repository snapshot ID (prefix)
    dry_run: bool = False
    yes: bool = False
    destroy_newer: bool = False
    stop: list[str] = field(default_factory=list)
    start: list[str] = field(default_factory=list)


@dataclass
class RollbackResult:
    target: str
    steps: list[str]
    done: bool
    seconds: float = 0.0
    changes: Changes | None = None  # counted before the swap (a dry run too, where it can)
    not_counted: str = ""  # why changes is None
    kept_as: str = ""
