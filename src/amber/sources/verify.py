"""Snapshot-level integrity: every file of a local snapshot against the SHA-256 the repository recorded.

Catches bit rot on the local disk and tampered snapshots: a file whose content
differs, a recorded file that is gone, and a file that was not there when the
backup read the snapshot (the snapshot's own excludes aside).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from amber.engine.patterns import PathMatcher
from amber.engine.treewalk import walk
from amber.engine.walkrule import mounts_of, read_path
from amber.repository import Repository
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
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return None
    return digest.digest()


def verify(repo: Repository, snapshot_id: str, parts: Sequence[VolumeSnapshot]) -> VerifyReport:
    snap = repo.load_snapshot(snapshot_id)
    report = VerifyReport(parts[0].name if parts else "", snapshot_id)
    mounts = mounts_of([(os.fsencode(p.volume.mountpoint), os.fsencode(p.path)) for p in parts])
    roots = [p.volume.mountpoint for p in parts]
    seen: set[str] = set()
    for path, node in walk(repo.load_tree, snap.tree):
        text = os.fsdecode(path)
        if node.type != "file" or not any(inside(text, r) for r in roots):
            continue
        seen.add(text)
        report.checked += 1
        digest = _sha256(read_path(mounts, path))
        if digest is None:
            report.missing.append(text)
        elif node.sha256 and digest != node.sha256:
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
            for name in files:
                original = os.path.join(recorded, name)
                if original not in seen and not excluded.matches(os.fsencode(original), os.fsencode(name)):
                    report.extra.append(original)
    return report


def _recorded(text: str, parts: Sequence[VolumeSnapshot]) -> str:
    best = max((p for p in parts if inside(text, p.path)), key=lambda p: len(p.path))
    return best.volume.mountpoint + text[len(best.path) :] if text != best.path else best.volume.mountpoint
