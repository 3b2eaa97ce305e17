"""One job's local snapshots: plan which volumes to snapshot, take them, map the backup, clean up.

A run takes one read-only snapshot per volume (subvolume, dataset, logical
volume) that holds a backup path or is nested below one, all with the same
name ``amber-<job>-<stamp>``, and reads the backup from them through a
:class:`~amber.engine.source.MappedSource` that records the original paths.
Mounts of other kinds below a path cannot be snapshotted with them: they are
read in place and reported, never silently left out.

Cleanup removes this job's snapshots beyond ``keep`` (the newest kept ones
stay), ``pre-rollback`` states, and leftovers of crashed runs: every amber
snapshot of the job whose owner record (owners.py) is missing or names a dead
process. It runs before and after every run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from amber.engine.source import LiveSource, MappedSource, Source
from amber.errors import LocalSnapshotError, UsageError
from amber.sources.btrfs import remove_empty_dir
from amber.sources.model import SnapshotProvider, Volume, VolumeSnapshot
from amber.sources.mounts import MountTable, inside, mount_of, mounts_below, system_mounts
from amber.sources.naming import parse_name
from amber.sources.owners import Owners, mine

KINDS = ("btrfs", "zfs", "lvm", "auto")
DEFAULT_DIR = ".amber-snapshots"


@dataclass(frozen=True)
class Settings:
    kind: str  # btrfs | zfs | lvm | auto
    keep: int = 0
    snapshot_dir: str = ""  # absolute, or relative to the top of each filesystem ("" = .amber-snapshots)


@dataclass
class Plan:
    """What a run snapshots: each volume with its provider and snapshot directory."""

    volumes: list[tuple[SnapshotProvider, Volume, str]] = field(default_factory=list)
    read_live: list[str] = field(default_factory=list)  # mounts below a path that no snapshot covers
    paths: list[str] = field(default_factory=list)

    def notes(self) -> list[str]:
        return [f"{m} is another filesystem that is not snapshotted: read live" for m in self.read_live]


@dataclass
class Taken:
    name: str
    plan: Plan
    parts: list[tuple[SnapshotProvider, VolumeSnapshot]]

    def source(self) -> Source:
        pairs = [(s.path, s.volume.mountpoint) for _, s in self.parts]
        pairs += [(m, m) for m in self.plan.read_live]
        return MappedSource(*pairs[0], *pairs[1:]) if pairs else LiveSource()  # no path exists

    def excludes(self) -> list[str]:
        """Snapshot directories inside a backup path (a Btrfs one is on the filesystem it snapshots)."""
        dirs = {d for _, _, d in self.plan.volumes}
        return sorted(d for d in dirs if any(inside(d, p) for p in self.plan.paths))


class LocalSnapshots:
    def __init__(
        self,
        providers: Mapping[str, SnapshotProvider],
        owners: Owners,
        settings: Settings,
        mounts: MountTable = system_mounts,
    ) -> None:
        if settings.kind not in KINDS:
            raise UsageError(f"unknown snapshot kind {settings.kind!r} (expected one of {', '.join(KINDS)})")
        self.providers = providers
        self.owners = owners
        self.settings = settings
        self.mounts = mounts

    def _provider(self, path: str) -> SnapshotProvider:
        kind = self.settings.kind
        if kind == "auto":
            fstype = mount_of(path, self.mounts()).fstype
            kind = fstype if fstype in ("btrfs", "zfs") else "lvm"
        return self.providers[kind]

    def _explained(
        self, path: str, provider: SnapshotProvider, exc: LocalSnapshotError
    ) -> LocalSnapshotError:
        """With ``snapshot = "auto"``, an LVM failure says why LVM was tried at all."""
        if self.settings.kind != "auto" or provider.kind != "lvm":
            return exc
        fstype = mount_of(path, self.mounts()).fstype
        return LocalSnapshotError(
            f'snapshot = "auto": {path} is on {fstype}, not Btrfs or ZFS, so LVM was tried: {exc.message}'
        )

    def snapshot_dir(self, volume: Volume) -> str:
        setting = self.settings.snapshot_dir or DEFAULT_DIR
        return setting if os.path.isabs(setting) else os.path.join(volume.top, setting)

    def plan(self, paths: list[str]) -> Plan:
        plan = Plan(paths=sorted({os.path.normpath(os.path.abspath(p)) for p in paths}))
        seen: set[str] = set()

        def add(provider: SnapshotProvider, volume: Volume) -> None:
            if volume.ident not in seen:
                seen.add(volume.ident)
                plan.volumes.append((provider, volume, self.snapshot_dir(volume)))

        for path in plan.paths:
            if not os.path.lexists(path):
                continue  # read in place, so the backup reports it missing like any other
            provider = self._provider(path)
            try:
                volume = provider.volume_of(path)
                if volume is None:
                    raise LocalSnapshotError(f"{path} is not on a {provider.kind} volume: cannot snapshot it")
            except LocalSnapshotError as exc:
                raise self._explained(path, provider, exc) from exc
            add(provider, volume)
            skip = [self.snapshot_dir(volume)]
            for nested in provider.volumes_below(volume, path, skip):
                if not any(inside(nested.mountpoint, d) for _, _, d in plan.volumes):
                    add(provider, nested)
        covered = {v.mountpoint for _, v, _ in plan.volumes}
        dirs = [d for _, _, d in plan.volumes]
        for path in plan.paths:
            for m in mounts_below(path, self.mounts()):
                outside = m.target not in covered and not any(inside(m.target, d) for d in dirs)
                if outside and m.target not in plan.read_live:
                    plan.read_live.append(m.target)
        plan.volumes.sort(key=lambda t: t[1].mountpoint)
        return plan

    def take(self, plan: Plan, name: str, job: str) -> Taken:
        """Record the owner, then snapshot every volume; on failure remove what was taken."""
        if parse_name(name) is None:
            raise UsageError(f"not an amber snapshot name: {name}")
        self.owners.save(mine(name, job))
        taken = Taken(name, plan, [])
        try:
            for provider, volume, directory in plan.volumes:
                taken.parts.append((provider, provider.create(volume, name, directory)))
        except BaseException:
            self.release(taken)
            raise
        return taken

    def release(self, taken: Taken) -> list[str]:
        """Remove a run's snapshots (errors are collected, not raised: cleanup retries later)."""
        problems = []
        for provider, snap in reversed(taken.parts):
            try:
                provider.delete(snap)
            except LocalSnapshotError as exc:
                problems.append(exc.message)
        if not problems:
            self.owners.forget(taken.name)
        return problems

    def existing(self, plan: Plan) -> dict[str, list[tuple[SnapshotProvider, VolumeSnapshot]]]:
        """Every amber snapshot of the planned volumes, grouped by name (oldest name first)."""
        found: dict[str, list[tuple[SnapshotProvider, VolumeSnapshot]]] = {}
        for provider, volume, directory in plan.volumes:
            for snap in provider.list(volume, directory):
                found.setdefault(snap.name, []).append((provider, snap))
        return dict(sorted(found.items(), key=lambda kv: (_created(kv[0]), kv[0])))

    def cleanup(self, plan: Plan, job: str, keep: int | None = None) -> tuple[list[str], list[str]]:
        """Remove the job's snapshots that are not kept and have no live owner: (removed names, problems)."""
        keep = self.settings.keep if keep is None else keep
        groups = {
            n: parts for n, parts in self.existing(plan).items() if (p := parse_name(n)) and p.job == job
        }
        kept_names = [n for n in groups if not _pre(n) and (r := self.owners.get(n)) and r.state == "kept"]
        keep_set = set(kept_names[-keep:]) if keep > 0 else set()
        removed, problems = [], []
        for name, parts in groups.items():
            record = self.owners.get(name)
            if name in keep_set or (record is not None and record.state == "running" and record.alive()):
                continue
            errors = self.release(Taken(name, plan, parts))
            problems += errors
            if not errors:
                removed.append(name)
        for name in self.owners.names():  # records of snapshots that were never taken, or are gone
            parsed, record = parse_name(name), self.owners.get(name)
            if parsed and parsed.job == job and name not in groups and not (record and record.alive()):
                self.owners.forget(name)
        for _, _, directory in plan.volumes:
            _remove_empty_runs(directory, job)
        return removed, problems


def _created(name: str) -> str:
    parsed = parse_name(name)
    return parsed.created.isoformat() if parsed else ""


def _pre(name: str) -> bool:
    parsed = parse_name(name)
    return parsed is not None and parsed.pre_rollback


def _remove_empty_runs(directory: str, job: str) -> None:
    """Run directories left empty by a crash between mkdir and snapshot."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        parsed = parse_name(name)
        if parsed is not None and parsed.job == job:
            remove_empty_dir(os.path.join(directory, name))
