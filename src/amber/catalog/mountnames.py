"""Names in the mounted view: which names are safe, how snapshots and versions are named,
and the snapshot directories (all, per host, per tag) a snapshot list gives. Pure.

Names read from trees, host names and tags are untrusted: a name that would
escape its directory or that the kernel cannot represent is left out of the view.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from amber.repository import Snapshot

LATEST = b"latest"
SHORT_ID = 8


def valid_name(name: bytes) -> bool:
    """A single, non-empty path component: no '/', no NUL, not '.' or '..'."""
    return bool(name) and name not in (b".", b"..") and b"/" not in name and b"\0" not in name


def time_name(moment: dt.datetime) -> bytes:
    """A snapshot time as a directory name, in the mounting host's time zone, to the second."""
    return moment.astimezone().isoformat(timespec="seconds").encode()


def dated_names(items: Sequence[tuple[str, dt.datetime]]) -> dict[bytes, str]:
    """Directory name -> snapshot ID; equal times get ``-1``, ``-2``... in ID order (as restic).

    ``items`` are (snapshot ID, time) in any order; the result is in time order.
    """
    names: dict[bytes, str] = {}
    for sid, moment in sorted(items, key=lambda item: (item[1], item[0])):
        base = time_name(moment)
        name, n = base, 0
        while name in names:
            n += 1
            name = base + b"-%d" % n
        names[name] = sid
    return names


def id_names(snapshot_ids: Iterable[str]) -> dict[bytes, str]:
    """Short ID (8 hex digits) -> snapshot ID; IDs whose short form is shared keep their full form."""
    ids = sorted(set(snapshot_ids))
    counts: dict[str, int] = {}
    for sid in ids:
        counts[sid[:SHORT_ID]] = counts.get(sid[:SHORT_ID], 0) + 1
    return {(sid[:SHORT_ID] if counts[sid[:SHORT_ID]] == 1 else sid).encode(): sid for sid in ids}


def group_names(labels: Iterable[str]) -> dict[bytes, str]:
    """Directory name -> host name or tag, leaving out labels that are not valid names."""
    out: dict[bytes, str] = {}
    for label in labels:
        raw = label.encode("utf-8", "surrogateescape")
        if valid_name(raw):
            out[raw] = label
    return out


def version_names(name: bytes, first_seen: Sequence[dt.datetime]) -> list[bytes]:
    """``<name>@<time>`` for each version (oldest first); equal times get ``-1``, ``-2``..."""
    out: list[bytes] = []
    taken: set[bytes] = set()
    for moment in first_seen:
        base = name + b"@" + time_name(moment)
        candidate, n = base, 0
        while candidate in taken:
            n += 1
            candidate = base + b"-%d" % n
        taken.add(candidate)
        out.append(candidate)
    return out


@dataclass
class SnapshotDirs:
    """The snapshot directories, computed once per snapshot list."""

    ordered: list[tuple[str, Snapshot]] = field(default_factory=list)
    ids: dict[bytes, str] = field(default_factory=dict)
    times: dict[bytes, str] = field(default_factory=dict)
    hosts: dict[bytes, dict[bytes, str]] = field(default_factory=dict)
    tags: dict[bytes, dict[bytes, str]] = field(default_factory=dict)


def _dated(snapshots: list[tuple[str, Snapshot]]) -> dict[bytes, str]:
    return dated_names([(sid, snap.datetime) for sid, snap in snapshots])


def snapshot_dirs(ordered: list[tuple[str, Snapshot]]) -> SnapshotDirs:
    by_host: dict[str, list[tuple[str, Snapshot]]] = {}
    by_tag: dict[str, list[tuple[str, Snapshot]]] = {}
    for sid, snap in ordered:
        by_host.setdefault(snap.hostname, []).append((sid, snap))
        for tag in set(snap.tags):
            by_tag.setdefault(tag, []).append((sid, snap))
    return SnapshotDirs(
        ordered=ordered,
        ids=id_names(sid for sid, _ in ordered),
        times=_dated(ordered),
        hosts={name: _dated(by_host[label]) for name, label in group_names(by_host).items()},
        tags={name: _dated(by_tag[label]) for name, label in group_names(by_tag).items()},
    )
