"""PostgreSQL continuous archiving: WAL push and fetch, base backups' records, WAL retention,
replication and checking (design §12d).

* :func:`push` / :func:`fetch` are PostgreSQL's ``archive_command`` and
  ``restore_command``: one WAL file each, without a lock or the index.
* A base backup is a snapshot tagged ``pg-basebackup`` holding the server's tar at
  ``/databases/postgresql-base/<cluster>.tar`` and its record (:class:`BaseInfo`)
  at ``/databases/postgresql-base/<cluster>.json``.
* :func:`expire` (run by prune) drops WAL older than the oldest kept base backup of
  its cluster; :func:`copy_wal` (run by copy) replicates WAL; ``walcheck.check_wal``
  (run by check) authenticates it and finds gaps.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import io
import os
import secrets
from collections import defaultdict
from dataclasses import dataclass, field

import msgspec

from amber.errors import (
    AmberError,
    AppendOnlyViolation,
    IntegrityError,
    ObjectNotFound,
    PermissionDenied,
    UsageError,
    WalConflict,
    WalMissing,
)
from amber.repository import Repository, Snapshot
from amber.repository.walstore import WalStore, is_record, wal_object
from amber.services import walnames

BASE_TAG = "pg-basebackup"
BASE_DIR = "/databases/postgresql-base"
MAX_INFO_BYTES = 64 * 1024  # a record is a few hundred bytes; a bigger one is not read into memory


class BaseInfo(msgspec.Struct, kw_only=True):
    """What a base backup needs from the archive: its WAL from ``start_lsn`` to ``stop_lsn``."""

    cluster: str
    timeline: int
    start_lsn: str
    stop_lsn: str
    segment_size: int = walnames.DEFAULT_SEGMENT_SIZE
    start_time: str = ""  # RFC 3339, when pg_basebackup started
    stop_time: str = ""  # RFC 3339, after it finished: recovery targets must be later
    server_version: str = ""

    @property
    def start_segment(self) -> str:
        return walnames.segment_name(self.timeline, walnames.parse_lsn(self.start_lsn), self.segment_size)

    @property
    def stop_segment(self) -> str:
        return walnames.segment_name(self.timeline, walnames.parse_lsn(self.stop_lsn), self.segment_size)


def tar_path(cluster: str) -> str:
    return f"{BASE_DIR}/{walnames.check_cluster(cluster)}.tar"


def info_path(cluster: str) -> str:
    return f"{BASE_DIR}/{walnames.check_cluster(cluster)}.json"


def encode_info(info: BaseInfo) -> bytes:
    return msgspec.json.encode(info)


@dataclass(frozen=True)
class BaseBackup:
    snapshot_id: str
    snapshot: Snapshot
    info: BaseInfo


def base_backups(
    repo: Repository, cluster: str | None = None, unreadable: list[str] | None = None
) -> list[BaseBackup]:
    """Every base backup (of ``cluster``, if given), oldest first. One whose snapshot or record
    cannot be read is left out, and named in ``unreadable`` (``<snapshot>: <why>``)."""
    scan = scan_base_backups(repo, cluster)
    if unreadable is not None:
        unreadable.extend(scan.damaged_snapshots + scan.bad_records)
    return scan.found


@dataclass
class BaseBackupScan:
    found: list[BaseBackup] = field(default_factory=list)  # oldest first
    damaged_snapshots: list[str] = field(default_factory=list)  # "<snapshot>: <why>", of any kind
    bad_records: list[str] = field(default_factory=list)  # base backups whose record is unusable


def scan_base_backups(repo: Repository, cluster: str | None = None) -> BaseBackupScan:
    """The base backups (of ``cluster``, if given), with those that cannot be used apart."""
    from amber.services.browse import dump  # not for wal-push: it must start fast

    repo.ensure_index()
    scan = BaseBackupScan()
    errors: list[tuple[str, AmberError]] = []
    snapshots = repo.snapshots(errors)
    scan.damaged_snapshots = [f"{sid[:8]}: {exc.message}" for sid, exc in errors]
    for sid, snap in snapshots.items():
        if BASE_TAG not in snap.tags:
            continue
        clusters = [t.split("=", 1)[1] for t in snap.tags if t.startswith("pg-cluster=")]
        for name in clusters:
            if cluster is not None and name != cluster:
                continue
            out = _Bounded()
            try:
                dump(repo, sid, info_path(name), out)
                info = msgspec.json.decode(out.getvalue(), type=BaseInfo)
                problem = _info_problem(info, name)
            except (AmberError, msgspec.DecodeError) as exc:
                problem = exc.message if isinstance(exc, AmberError) else "malformed record"
            if problem:
                scan.bad_records.append(f"{sid[:8]}: {problem}")
                continue
            scan.found.append(BaseBackup(sid, snap, info))
    scan.found.sort(key=lambda b: (b.snapshot.time, b.snapshot_id))
    return scan


class _Bounded(io.BytesIO):
    def write(self, data: bytes) -> int:  # type: ignore[override]
        if self.tell() + len(data) > MAX_INFO_BYTES:
            raise IntegrityError(f"malformed record: larger than {MAX_INFO_BYTES} bytes")
        return super().write(data)


def _info_problem(info: BaseInfo, cluster: str) -> str:
    """Why a record read back from the repository is not used ("" when it is)."""
    if info.cluster != cluster:
        return f"malformed record: cluster {info.cluster[:64]!r} under the tag of {cluster!r}"
    problem = walnames.range_problem(info.timeline, info.start_lsn, info.stop_lsn, info.segment_size)
    for moment in (info.start_time, info.stop_time):
        try:
            if moment and datetime.datetime.fromisoformat(moment).tzinfo is None:
                problem = problem or f"{moment[:64]!r} has no UTC offset"
        except ValueError:
            problem = problem or f"{moment[:64]!r} is not a time"
    return f"malformed record: {problem}" if problem else ""


# -- archive_command / restore_command ---------------------------------------------------------
def push(repo: Repository, cluster: str, path: str) -> bool:
    """Archive the file at ``path``; False when the same content was already archived.
    Returns only once it is durable: blobs, index and record each saved atomically and synced."""
    from amber.services.walpush import push_files  # the chunker: only pushes need it

    (pushed,) = push_files(repo, cluster, [path])
    if pushed.error is not None:
        raise pushed.error
    return pushed.stored


def fetch(repo: Repository, cluster: str, file: str, dest: str) -> int:
    """Write archived ``file`` to ``dest`` (atomically); WalMissing when it is not archived."""
    name = walnames.object_name(cluster, file)
    try:
        data = WalStore(repo).get(name)
    except ObjectNotFound:
        raise WalMissing(f"{file} is not in the archive (cluster {cluster})") from None
    folder = os.path.dirname(os.path.abspath(dest))
    tmp = os.path.join(folder, f".amber-wal-{secrets.token_hex(4)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, dest)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise UsageError(f"cannot write {dest}: {exc.strerror}") from exc
    return len(data)


def backup_history(
    repo: Repository, cluster: str, timeline: int, start_lsn: str, segment_size: int
) -> str | None:
    """The backup history file (``<segment>.<offset>.backup``) PostgreSQL archives when a base
    backup that started at ``start_lsn`` ends, or None when it is not in the archive."""
    lsn = walnames.parse_lsn(start_lsn)
    file = f"{walnames.segment_name(timeline, lsn, segment_size)}.{lsn % segment_size:08X}.backup"
    try:
        return WalStore(repo).get(walnames.object_name(cluster, file)).decode(errors="replace")
    except ObjectNotFound:
        return None


# -- listing -----------------------------------------------------------------------------------
@dataclass
class ClusterWal:
    files: dict[str, int] = field(default_factory=dict)  # object name (either form) -> stored size
    names: list[walnames.WalName] = field(default_factory=list)  # one per WAL file
    objects: dict[str, list[str]] = field(default_factory=dict)  # WAL file -> its object(s)


def archived(repo: Repository) -> dict[str, ClusterWal]:
    """The archived WAL by cluster. Objects with names amber never writes are ignored here
    (``check`` reports them)."""
    by_cluster: dict[str, ClusterWal] = defaultdict(ClusterWal)
    for fi in WalStore(repo).list():
        parsed = walnames.split_object_name(wal_object(fi.name))
        if parsed is None:
            continue
        entry = by_cluster[parsed[0]]
        entry.files[fi.name] = fi.size
        if parsed[1].file not in entry.objects:  # a file sealed whole before a migration, and a record
            entry.names.append(parsed[1])
        entry.objects.setdefault(parsed[1].file, []).append(fi.name)
    return dict(by_cluster)


def gaps(wal: ClusterWal, bases: list[BaseBackup]) -> list[str]:
    """Segment positions missing between the oldest base backup's start and the newest WAL."""
    if not bases:
        return []
    oldest = bases[0].info
    start = walnames.segment_position(walnames.parse_lsn(oldest.start_lsn), oldest.segment_size)
    return walnames.missing_positions(wal.names, start, oldest.segment_size)


# -- retention ---------------------------------------------------------------------------------
@dataclass
class ExpireResult:
    removed: int = 0
    removed_bytes: int = 0
    kept: int = 0
    refused: list[str] = field(default_factory=list)  # objects the storage would not delete
    dropped: list[str] = field(default_factory=list)  # objects removed (or, dry run, to remove)


def expire(repo: Repository, dry_run: bool = False) -> ExpireResult:
    """Drop WAL that no kept base backup needs: per cluster, what lies before the oldest base
    backup's start segment (any timeline). History files stay; a cluster without a base
    backup keeps all of its WAL. Run under prune's lock; pushes only add newer files."""
    result = ExpireResult()
    wal = archived(repo)
    if not wal:
        return result
    store = WalStore(repo)
    unreadable: list[str] = []
    bases = base_backups(repo, unreadable=unreadable)
    if unreadable:  # an unreadable base backup might be the oldest: removing its WAL could lose it
        result.kept = sum(len(e.names) for e in wal.values())
        result.refused.append(f"no WAL expired: snapshot {unreadable[0]}")
        return result
    for cluster, entry in wal.items():
        mine = [b for b in bases if b.info.cluster == cluster]
        if not mine:
            result.kept += len(entry.names)
            continue
        oldest = min(
            walnames.segment_position(walnames.parse_lsn(b.info.start_lsn), b.info.segment_size) for b in mine
        )
        doomed = walnames.expirable(entry.names, oldest)
        result.kept += len(entry.names) - len(doomed)
        for obj in (obj for name in doomed for obj in entry.objects[name.file]):
            result.removed += 1
            result.removed_bytes += entry.files[obj]
            result.dropped.append(obj)
            if not dry_run:
                repo.cancel.check()
                try:
                    store.remove(obj)
                except ObjectNotFound:
                    pass
                except (PermissionDenied, AppendOnlyViolation) as exc:  # e.g. still under retention
                    result.removed -= 1
                    result.removed_bytes -= entry.files[obj]
                    result.dropped.remove(obj)
                    result.kept += 1
                    result.refused.append(f"wal/{obj} could not be removed: {exc.message}")
    return result


# -- replication -------------------------------------------------------------------------------
@dataclass
class WalCopyResult:
    copied: int = 0
    already: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (object name, why)


def copy_wal(src: Repository, dst: Repository) -> WalCopyResult:
    """Every WAL file ``dst`` lacks, read and verified, then stored in ``dst``'s form (a record
    and blobs deduplicated against its index, or sealed whole in format 2). A source object
    that does not verify, or a name ``dst`` holds with other content, is listed in
    ``failed``; storage errors on ``dst`` raise. The caller holds locks on both."""
    from amber.services.walpush import WalWriter

    result = WalCopyResult()
    source = archived(src) if src.config.version >= 2 else {}
    if not source:
        return result
    src_store, dst_store = WalStore(src), WalStore(dst)
    have = {wal_object(fi.name) for fi in dst_store.list()}
    writer = WalWriter(dst, dst_store, None) if dst_store.writes_records else None
    records: list[tuple[str, int, bytes, list[bytes]]] = []
    for cluster, entry in sorted(source.items()):
        for file, objects in sorted(entry.objects.items()):
            name = f"{cluster}.{file}"
            if name in have:
                result.already += 1
                continue
            src.cancel.check()
            obj = next((o for o in objects if is_record(o)), objects[0])
            try:
                data = src_store.read(obj, src_store.load_sealed(obj, entry.files[obj]))
                if writer is None:
                    dst_store.put(name, data)
                else:
                    records.append((name, len(data), hashlib.sha256(data).digest(), writer.add(data)))
            except (IntegrityError, WalConflict, ObjectNotFound) as exc:
                result.failed.append((obj, exc.message))
                continue
            result.copied += 1
            if writer is not None and len(records) >= 64:  # bounded: a record waits for its flush
                writer.commit(records)
                records = []
    if writer is not None:
        writer.commit(records)
    return result
