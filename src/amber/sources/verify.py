"""Snapshot-level integrity: every file of a local snapshot against the SHA-256 the repository recorded.

Catches bit rot on the local disk and tampered snapshots: a file whose content
differs, a recorded file that is gone, and a file that was not there when the
backup read the snapshot (the snapshot's own excludes aside).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field

from amber.engine.metadata import node_type
from amber.engine.patterns import PathMatcher
from amber.engine.treewalk import walk
from amber.engine.walkrule import mounts_of, read_path
from amber.repository import Node, Repository
from amber.services.snapshots import SnapshotFilter, select
from amber.sources.model import VolumeSnapshot
from amber.sources.mounts import inside

TAG = "local-snapshot="


@dataclass
class VerifyReport:
    name: str
    repository_snapshot: str
    checked: int = 0
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.changed or self.missing or self.extra)


def backed_up_as(repo: Repository, name: str) -> str | None:
    """The repository snapshot tagged ``local-snapshot=<name>`` (the newest, if several)."""
    found = select(repo, SnapshotFilter(tags=[TAG + name]))
    return found[-1][0] if found else None


def _sha256(path: bytes) -> bytes | None:
    """The digest of the regular file at ``path``, never through a symlink and never blocking
    on a fifo; None when it is missing; b"" when it is something else now."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError:  # ELOOP: a symlink now; ENXIO: a socket; EACCES
        return b""
    digest = hashlib.sha256()
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return b""
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.digest()


def _same_entry(path: bytes, node: Node) -> bool | None:
    """Whether the entry at ``path`` (not a regular file's content) is still ``node``: same
    kind, and a symlink's same target. None when it is missing."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if node_type(st.st_mode) != node.type:
        return False
    return node.type != "symlink" or os.readlink(path) == node.link_target


def verify(repo: Repository, snapshot_id: str, parts: Sequence[VolumeSnapshot]) -> VerifyReport:
    """Every entry the repository snapshot recorded under ``parts`` against the local snapshot:
    files by SHA-256, symlinks by target, the rest by kind; then whatever the local snapshot
    holds that the backup did not record (its excludes aside)."""
    snap = repo.load_snapshot(snapshot_id)
    report = VerifyReport(parts[0].name if parts else "", snapshot_id)
    mounts = mounts_of([(os.fsencode(p.volume.mountpoint), os.fsencode(p.path)) for p in parts])
    roots = [p.volume.mountpoint for p in parts]
    seen: set[str] = set()
    for path, node in walk(repo.load_tree, snap.tree):
        text = os.fsdecode(path)
        if not any(inside(text, r) for r in roots):
            continue
        seen.add(text)
        local = read_path(mounts, path)
        if node.type == "file":
            report.checked += 1
            digest = _sha256(local)
            same = None if digest is None else bool(digest) and (not node.sha256 or digest == node.sha256)
        else:
            same = _same_entry(local, node)
        if same is None:
            report.missing.append(text)
        elif not same:
            report.changed.append(text)
    excluded = PathMatcher(snap.excludes)
    for base in snap.paths:
        if not any(inside(base, r) for r in roots):
            continue
        for directory, dirs, files in os.walk(os.fsdecode(read_path(mounts, os.fsencode(base)))):
            recorded = _recorded(directory, parts)
            dirs[:] = [
                d
                for d in dirs
                if not excluded.matches(os.fsencode(os.path.join(recorded, d)), os.fsencode(d))
            ]
            for name in (*dirs, *files):  # symlinks, fifos and devices are among ``files``
                original = os.path.join(recorded, name)
                if original in seen or excluded.matches(os.fsencode(original), os.fsencode(name)):
                    continue
                with contextlib.suppress(OSError):  # gone meanwhile; a socket is never backed up
                    if node_type(os.lstat(os.path.join(directory, name)).st_mode) is not None:
                        report.extra.append(original)
    return report


def _recorded(text: str, parts: Sequence[VolumeSnapshot]) -> str:
    best = max((p for p in parts if inside(text, p.path)), key=lambda p: len(p.path))
    return best.volume.mountpoint + text[len(best.path) :] if text != best.path else best.volume.mountpoint
