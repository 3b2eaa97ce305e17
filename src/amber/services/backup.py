"""The backup use case: choose a parent, archive, flush, write the snapshot."""

from __future__ import annotations

import datetime as dt
import functools
import getpass
import os
import socket
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import BinaryIO, ParamSpec, TypeVar

from amber import __version__
from amber.childenv import child_env
from amber.engine import retention_hold
from amber.engine.archiver import ArchiveOptions, Archiver, ArchiveResult
from amber.engine.changedpaths import ChangedPaths
from amber.engine.changefacts import ChangeFacts
from amber.engine.chunker import Chunker
from amber.engine.filereader import ContentReader
from amber.engine.patterns import PathMatcher
from amber.engine.progress import Progress
from amber.engine.source import LiveSource, Source
from amber.engine.streamread import cancellable
from amber.errors import (
    AmberError,
    DiskFull,
    Interrupted,
    PartialBackup,
    SourceCommandFailed,
    SuspiciousBackup,
    UsageError,
)
from amber.repository import Repository, Snapshot
from amber.repository.model import Anomaly, format_time, parse_time
from amber.services.own_snapshots import COMPACT_AT, OwnSnapshots
from amber.services.snapshots import SnapshotFilter, as_text, select

P = ParamSpec("P")
R = TypeVar("R")


def _says_what_next(backup: Callable[P, R]) -> Callable[P, R]:
    """A backup that ran out of space says what to do about it."""

    @functools.wraps(backup)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return backup(*args, **kwargs)
        except DiskFull as exc:
            raise DiskFull(
                f"{exc.message}. Snapshots already stored are intact; free some space, or run `amber prune` "
                "(it works on a full disk) to reclaim what this backup left in the repository"
            ) from exc

    return run


@dataclass
class BackupRequest:
    paths: list[str] = field(default_factory=list)
    excludes: list[str] = field(default_factory=list)
    one_file_system: bool = False
    tags: list[str] = field(default_factory=list)
    host: str | None = None
    time: str | None = None
    parent: str | None = None
    force: bool = False  # re-read every file, ignoring the parent
    stdin_filename: str = "stdin"
    workers: int | None = None  # archiver threads (None = one per core)
    source: Source = field(default_factory=LiveSource)  # where the paths are read (engine/source.py)
    # The ransomware check (amber.anomaly, above this layer, passes it in): facts -> verdict.
    assess: Callable[[ChangeFacts], Anomaly] | None = None
    exclude_caches: bool = False  # skip directories tagged with a CACHEDIR.TAG
    # A watcher's marks since ``parent`` (which must be given): only they are walked (amber watch).
    changes: ChangedPaths | None = None


SUSPICIOUS_TAG = retention_hold.SUSPICIOUS_TAG


@dataclass
class BackupOutcome:
    snapshot_id: str
    snapshot: Snapshot
    result: ArchiveResult


def content_reader(repo: Repository, progress: Progress) -> ContentReader:
    cfg = repo.config
    seed = repo.key.chunker_seed
    return ContentReader(
        repo.blobs,
        repo.key.blob_id,
        lambda: Chunker(cfg.chunk_avg, cfg.chunk_min, cfg.chunk_max, seed),
        progress.bytes_done,
        repo.cancel,
    )


def _snapshot_time(text: str | None) -> str:
    if not text:
        return format_time(dt.datetime.now().astimezone())
    try:
        return format_time(parse_time(text))
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def _find_parent(repo: Repository, req: BackupRequest, host: str, paths: list[str]) -> str | None:
    """The snapshot whose unchanged files are not read again (design §12).

    Only a snapshot this host wrote qualifies: any key holder can plant one
    with our host name and paths, and its content IDs would be taken on trust.
    An explicit ``--parent`` is the user's choice and is used as given.
    """
    if req.force:
        return None
    if req.parent:
        return repo.resolve_snapshot_id(req.parent)
    own = OwnSnapshots(repo.id).ids()
    candidates = [
        sid
        for sid, s in select(repo, SnapshotFilter(hosts=[host]))
        if sid in own and sorted(s.paths) == sorted(as_text(p) for p in paths) and not s.partial
    ]
    return candidates[-1] if candidates else None


def _commit(
    repo: Repository, req: BackupRequest, host: str, paths: list[str], parent: str | None,
    result: ArchiveResult, missing_packs: list[str],
) -> BackupOutcome:  # fmt: skip
    """Flush packs and index, then write the snapshot: the order that survives crashes."""
    if missing_packs:
        result.notes.append(
            f"{len(missing_packs)} pack(s) named in the index are missing (first {missing_packs[0][:16]}); "
            "their blobs were stored again. Run `amber check`"
        )
    repo.blobs.flush()
    result.summary.data_added_stored = repo.blobs.stats.stored_bytes
    tags = set(req.tags)
    if req.assess is not None and result.facts.has_parent:
        result.summary.anomaly = req.assess(result.facts)
        if result.summary.anomaly.verdict == SUSPICIOUS_TAG:
            tags.add(SUSPICIOUS_TAG)  # still written: it may be all the user has
    snap = Snapshot(
        time=_snapshot_time(req.time),
        tree=result.tree,
        paths=[as_text(p) for p in paths],
        hostname=host,
        username=getpass.getuser(),
        uid=os.getuid(),
        gid=os.getgid(),
        tags=sorted(tags),
        parent=parent or "",
        excludes=[as_text(e) for e in req.excludes],
        program_version=f"amber {__version__}",
        partial=bool(result.skipped),
        skipped=[as_text(p) for p in result.skipped],
        changed_during_read=[as_text(p) for p in result.changed_during_read],
        summary=result.summary,
    )
    sid = repo.save_snapshot(snap)
    own = OwnSnapshots(repo.id)
    if not own.record(sid, present=repo.snapshot_names() if _long_list(repo) else None):
        result.notes.append(f"cannot record snapshot {sid[:8]} as this host's own in {own.path}; "
                            "the next backup reads every file again")  # fmt: skip
    return BackupOutcome(sid, snap, result)


def _long_list(repo: Repository) -> bool:
    try:
        return os.stat(OwnSnapshots(repo.id).path).st_size > COMPACT_AT
    except OSError:
        return False


@dataclass
class ArchivedPaths:
    """The paths archived but not yet committed: ``commit`` writes the snapshot."""

    paths: list[str]
    host: str
    parent: str | None
    result: ArchiveResult
    missing_packs: list[str]


def backup_paths(repo: Repository, req: BackupRequest, progress: Progress | None = None) -> BackupOutcome:
    """Back up ``req.paths``. Raises PartialBackup (after writing) if files were skipped."""
    done = archive_paths(repo, req, progress)
    return commit(repo, req, done)


@_says_what_next
def archive_paths(
    repo: Repository, req: BackupRequest, progress: Progress | None = None, recorded_extra: Sequence[str] = ()
) -> ArchivedPaths:  # fmt: skip
    """Store ``req.paths``' data and trees; ``recorded_extra`` are paths the snapshot will also list."""
    progress = progress or repo.events
    if not req.paths:
        raise UsageError("nothing to back up: give at least one path")
    paths = sorted({os.path.normpath(os.path.abspath(p)) for p in req.paths})
    read = req.source.read_path
    missing = [p for p in paths if not os.path.lexists(read(os.fsencode(p)))]
    if len(missing) == len(paths):
        raise UsageError(f"path does not exist: {missing[0]}")
    _snapshot_time(req.time)  # reject a bad --time before reading anything
    missing_packs = repo.drop_missing_packs()  # never deduplicate against deleted data
    host = req.host or socket.gethostname()
    parent = _find_parent(repo, req, host, [*paths, *recorded_extra])
    parent_tree = repo.load_snapshot(parent).tree if parent else None
    # Marks are relative to the snapshot they were collected after, and a missing pack may
    # lie under a reused subtree: then walk everything (design §12c).
    changes = req.changes if req.parent and parent and not missing_packs else None
    archiver = Archiver(
        repo.blobs,
        repo,
        content_reader(repo, progress),
        ArchiveOptions(
            PathMatcher(req.excludes, req.exclude_caches),
            req.one_file_system,
            workers=req.workers or ArchiveOptions.workers,
            source=req.source,
            changes=changes,
        ),
        progress,
        repo.cancel,
    )
    with keeping_uploads(repo):
        result = archiver.archive([os.fsencode(p) for p in paths if p not in missing], parent_tree)
    result.skipped[:0] = missing
    result.why_skipped.update((p, "no such file or directory") for p in missing)
    return ArchivedPaths(paths, host, parent, result, missing_packs)


@_says_what_next
def commit(repo: Repository, req: BackupRequest, done: ArchivedPaths) -> BackupOutcome:
    return _commit(repo, req, done.host, done.paths, done.parent, done.result, done.missing_packs)


@_says_what_next
def backup_stream(
    repo: Repository, req: BackupRequest, stream: BinaryIO, progress: Progress | None = None
) -> BackupOutcome:
    name = req.stdin_filename.strip("/")
    if not name or "/" in name:
        raise UsageError("--stdin-filename must be a plain file name")
    missing_packs = repo.drop_missing_packs()
    reader = content_reader(repo, progress or repo.events)
    archiver = Archiver(repo.blobs, repo, reader, cancel=repo.cancel)
    with keeping_uploads(repo):
        # a silent pipe must not hold off a signal: read it in slices that check the cancel
        result = archiver.archive_stream(os.fsencode(name), cancellable(stream, repo.cancel))
    host = req.host or socket.gethostname()
    return _commit(repo, req, host, ["/" + name], None, result, missing_packs)


@_says_what_next
def backup_command(
    repo: Repository, req: BackupRequest, argv: Sequence[str], progress: Progress | None = None
) -> BackupOutcome:
    """Back up a command's stdout; no snapshot unless it exits 0."""
    if not argv:
        raise UsageError("--stdin-from-command needs a command after --")
    try:
        proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, env=child_env())
    except OSError as exc:
        raise SourceCommandFailed(f"cannot run {argv[0]}: {exc.strerror}") from exc
    assert proc.stdout is not None
    name = req.stdin_filename.strip("/")
    missing_packs = repo.drop_missing_packs()
    reader = content_reader(repo, progress or repo.events)
    archiver = Archiver(repo.blobs, repo, reader, cancel=repo.cancel)
    repo.cancel.on_cancel(proc.kill)  # a cancel must not wait for the command's next output
    try:
        with keeping_uploads(repo):
            result = archiver.archive_stream(os.fsencode(name), proc.stdout)
            code = proc.wait()
            repo.cancel.check()  # killed by the cancel: report that, not its exit status
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if code != 0:
        raise SourceCommandFailed(f"command {argv[0]!r} exited with status {code}; no snapshot written")
    host = req.host or socket.gethostname()
    return _commit(repo, req, host, ["/" + name], None, result, missing_packs)


@contextmanager
def keeping_uploads(repo: Repository) -> Iterator[None]:
    """On an interruption, index the packs already uploaded, so the next run reuses them.

    Not after a lost lease: a prune may have deleted those packs meanwhile.
    """
    try:
        yield
    except Interrupted:
        if all(held.is_fresh() for held in repo.held_locks):
            with suppress(AmberError):  # the interruption is what gets reported
                repo.blobs.flush_index()
        raise


def raise_if_partial(outcome: BackupOutcome) -> None:
    if outcome.snapshot.partial:
        raise PartialBackup(
            f"snapshot {outcome.snapshot_id[:8]} saved, but {len(outcome.snapshot.skipped)} "
            "item(s) could not be read"
        )


def raise_if_suspicious(outcome: BackupOutcome) -> None:
    anomaly = outcome.snapshot.summary.anomaly
    if anomaly is not None and anomaly.verdict == SUSPICIOUS_TAG:
        raise SuspiciousBackup(
            f"snapshot {outcome.snapshot_id[:8]} saved and tagged suspicious: {'; '.join(anomaly.reasons)}. "
            f"See `amber anomaly show {outcome.snapshot_id[:8]}`"
        )
