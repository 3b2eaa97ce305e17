"""Selecting snapshots: by ID prefix, ``latest``, and host/path/tag filters."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from amber.errors import AmberError, SnapshotNotFound
from amber.repository import Repository, Snapshot


def as_text(path: str) -> str:
    """A path as snapshots store it: valid UTF-8, undecodable bytes as ``\\xNN`` escapes.

    Snapshot strings are msgpack str, which must be UTF-8; a raw surrogate-escaped
    path (non-UTF-8 name) would make the snapshot unwritable.
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


@dataclass
class SnapshotFilter:
    hosts: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)  # each entry may be "a,b": all must match
    paths: list[str] = field(default_factory=list)

    def matches(self, snap: Snapshot) -> bool:
        if self.hosts and snap.hostname not in self.hosts:
            return False
        if self.paths:
            wanted = {as_text(os.path.normpath(os.path.abspath(p))) for p in self.paths}
            if not wanted.issubset(set(snap.paths)):
                return False
        if self.tags:
            have = set(snap.tags)
            if not any(set(t.split(",")) <= have for t in self.tags):
                return False
        return True


def select(
    repo: Repository, flt: SnapshotFilter, damaged: list[tuple[str, AmberError]] | None = None
) -> list[tuple[str, Snapshot]]:
    """Matching snapshots, oldest first. Unreadable ones are left out (and listed in ``damaged``):
    one damaged snapshot must not block restores of the others."""
    errors: list[tuple[str, AmberError]] = [] if damaged is None else damaged
    found = [(sid, s) for sid, s in repo.snapshots(errors).items() if flt.matches(s)]
    return sorted(found, key=lambda item: (item[1].datetime, item[0]))


def resolve(repo: Repository, ref: str, flt: SnapshotFilter | None = None) -> tuple[str, Snapshot]:
    """``latest`` (newest matching the filter) or an ID prefix."""
    if ref == "latest":
        matches = select(repo, flt or SnapshotFilter())
        if not matches:
            raise SnapshotNotFound("no snapshot matches (latest)")
        return matches[-1]
    sid = repo.resolve_snapshot_id(ref)
    return sid, repo.load_snapshot(sid)


def split_ref(ref: str) -> tuple[str, str]:
    """``ID[:SUBPATH]`` into its parts."""
    snap, _, sub = ref.partition(":")
    return snap, sub
