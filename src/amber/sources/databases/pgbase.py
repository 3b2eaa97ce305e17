"""PostgreSQL base backups for point-in-time recovery (design §12d): ``pg_basebackup`` into a
snapshot, and a base backup restored into a data directory set up to replay archived WAL.

The backup streams ``pg_basebackup -D - -Ft -X none``: one tar of the data directory on
stdout, without WAL, since the WAL comes from the archive. With ``-X none`` the server
waits until the WAL the backup needs is archived before pg_basebackup exits, so a base
backup that finished can be restored. Its start LSN and timeline come from the tar's first
member, ``backup_label``; its stop LSN from the backup history file the server archived
(``<segment>.<offset>.backup``), which also proves the archive is this repository.
"""

from __future__ import annotations

import datetime
import io
import os
import re
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from amber.cancel import CancelToken
from amber.errors import DatabaseError, DatabaseNotEmpty, UsageError
from amber.repository import Repository
from amber.services.backup import BackupOutcome, BackupRequest
from amber.services.browse import dump
from amber.services.streams import NamedStream, backup_streams
from amber.services.wal import (
    BASE_TAG,
    BaseBackup,
    BaseInfo,
    backup_history,
    base_backups,
    encode_info,
    info_path,
    tar_path,
)
from amber.services.walnames import parse_lsn
from amber.sources.databases import clients
from amber.sources.databases.spec import DatabaseSpec

_START = re.compile(r"^START WAL LOCATION: ([0-9A-F]+/[0-9A-F]+)", re.MULTILINE)
_TIMELINE = re.compile(r"^START TIMELINE: (\d+)", re.MULTILINE)
_HEAD = 64 * 1024  # the tar's first member is backup_label, a few hundred bytes
_STOP = re.compile(r"^STOP WAL LOCATION: ([0-9A-F]+/[0-9A-F]+)", re.MULTILINE)


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat()


def basebackup_argv(spec: DatabaseSpec) -> list[str]:
    return [
        clients.program("pg_basebackup"),
        *clients.connection_args(spec),
        "--pgdata=-",
        "--format=tar",
        "--wal-method=none",
        "--checkpoint=fast",
        "--label=amber",
        *spec.options,
    ]


@dataclass
class _Progress:
    """What the tar stream learnt, for the record stream that follows it."""

    info: BaseInfo | None = None


def server_facts(spec: DatabaseSpec) -> tuple[int, str]:
    """(WAL segment size in bytes, server version); refuses a server that does not archive."""
    rows = clients.query(
        spec,
        "SELECT current_setting('archive_mode'), current_setting('wal_segment_size'), "
        "current_setting('server_version')",
        "postgres",
    )
    mode, size, version = rows[0].split("|") if "|" in rows[0] else rows[0].split("\t")
    if mode == "off":
        raise DatabaseError(
            "archive_mode is off on this server: a base backup without archived WAL "
            "cannot be recovered; set archive_mode and archive_command first (docs/operations.md)"
        )
    match = re.fullmatch(r"(\d+)\s*([kMG]?B)", size.strip())
    if not match:
        raise DatabaseError(f"unexpected wal_segment_size {size!r}")
    unit = {"B": 1, "kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}[match.group(2)]
    return int(match.group(1)) * unit, version


@contextmanager
def _tar_stream(
    repo: Repository,
    spec: DatabaseSpec,
    cluster: str,
    segment_size: int,
    version: str,
    progress: _Progress,
    cancel: CancelToken | None,
) -> Iterator[IO[bytes]]:
    argv = basebackup_argv(spec)
    env = clients.env(spec)
    started = _now()
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, env=env
            )
        except OSError as exc:
            raise DatabaseError(f"cannot run {argv[0]}: {exc.strerror}") from exc
        assert proc.stdout is not None
        if cancel is not None:
            cancel.on_cancel(proc.kill)
        head = _Head(proc.stdout)
        try:
            yield head  # type: ignore[misc]
            head.read()
            code = proc.wait()
            if cancel is not None:
                cancel.check()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            proc.stdout.close()
        errors.seek(0)
        text = errors.read().decode(errors="replace")
    if code != 0:
        raise DatabaseError(f"pg_basebackup failed (exit {code}): {clients.last_line(text.encode())}")
    timeline, start_lsn = _backup_label(bytes(head.head))
    stop_lsn = _stop_lsn(repo, cluster, timeline, start_lsn, segment_size)
    progress.info = BaseInfo(
        cluster=cluster,
        timeline=timeline,
        start_lsn=start_lsn,
        stop_lsn=stop_lsn,
        segment_size=segment_size,
        start_time=started,
        stop_time=_now(),
        server_version=version,
    )


class _Head(io.RawIOBase):
    """Passes a stream through, keeping its first bytes (where the tar holds backup_label)."""

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner
        self.head = bytearray()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._inner.readinto(buffer)  # type: ignore[attr-defined]
        if n and len(self.head) < _HEAD:
            self.head += memoryview(buffer)[: min(n, _HEAD - len(self.head))]
        return int(n or 0)


def _backup_label(head: bytes) -> tuple[int, str]:
    """(timeline, start LSN) from the backup_label that opens pg_basebackup's tar."""
    try:
        member = tarfile.TarInfo.frombuf(head[:512], "utf-8", "replace")
    except tarfile.TarError as exc:
        raise DatabaseError("pg_basebackup's output is not a tar archive") from exc
    label = head[512 : 512 + member.size].decode(errors="replace")
    start, timeline = _START.search(label), _TIMELINE.search(label)
    if member.name != "backup_label" or not start or not timeline:
        raise DatabaseError("pg_basebackup's tar does not start with a backup_label naming its WAL start")
    return int(timeline.group(1)), start.group(1)


def _stop_lsn(repo: Repository, cluster: str, timeline: int, start_lsn: str, segment_size: int) -> str:
    """The stop position, from the backup history file the server archived when the backup
    ended. Finding it also proves the server archives into this repository under ``cluster``."""
    record = backup_history(repo, cluster, timeline, start_lsn, segment_size)
    if record is None:
        raise DatabaseError(
            f"the server did not archive this backup's WAL into this repository as cluster {cluster!r}: "
            "point its archive_command at `amber pg wal-push %p` with the same repository and --cluster"
        )
    stop = _STOP.search(record)
    if not stop:
        raise DatabaseError("the backup history file the server archived has no STOP WAL LOCATION")
    return stop.group(1)


@contextmanager
def _info_stream(progress: _Progress) -> Iterator[IO[bytes]]:
    if progress.info is None:  # the tar stream comes first and fills it, or fails
        raise DatabaseError("the base backup's WAL positions are unknown")
    with tempfile.TemporaryFile() as f:
        f.write(encode_info(progress.info))
        f.seek(0)
        yield f


def basebackup(
    repo: Repository, spec: DatabaseSpec, cluster: str, tags: Sequence[str] = (), host: str | None = None
) -> tuple[BackupOutcome, BaseInfo]:
    """One snapshot holding the server's tar and its record; nothing is written if it fails."""
    segment_size, version = server_facts(spec)
    progress = _Progress()
    streams = [
        NamedStream(
            tar_path(cluster),
            lambda: _tar_stream(repo, spec, cluster, segment_size, version, progress, repo.cancel),
        ),
        NamedStream(info_path(cluster), lambda: _info_stream(progress)),
    ]
    req = BackupRequest(tags=[BASE_TAG, f"pg-cluster={cluster}", *tags], host=host)
    outcome = backup_streams(repo, req, streams)
    assert progress.info is not None
    return outcome, progress.info


# -- point-in-time restore ----------------------------------------------------------------------
def choose_base(
    bases: Sequence[BaseBackup], target_time: datetime.datetime | None = None, target_lsn: int | None = None
) -> BaseBackup:
    """The newest base backup that ended before the target (the newest of all without one)."""
    usable = list(bases)
    if target_time is not None:
        usable = [
            b
            for b in usable
            if b.info.stop_time and datetime.datetime.fromisoformat(b.info.stop_time) <= target_time
        ]
    if target_lsn is not None:
        usable = [b for b in usable if parse_lsn(b.info.stop_lsn) <= target_lsn]
    if not usable:
        what = "before the target" if (target_time or target_lsn is not None) else "in the repository"
        raise UsageError(f"no base backup {what} (amber pg list shows them)")
    return usable[-1]


def prepare_target(directory: str) -> None:
    """An empty data directory, mode 0700 (PostgreSQL refuses a looser one)."""
    if os.path.exists(directory):
        if not os.path.isdir(directory):
            raise UsageError(f"{directory} is not a directory")
        if os.listdir(directory):
            raise DatabaseNotEmpty(f"{directory} is not empty: restore a base backup into an empty directory")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)


def extract_base(repo: Repository, base: BaseBackup, directory: str) -> int:
    """Stream the base backup's tar from the repository into ``tar -x``; returns bytes read."""
    argv = ["tar", "--extract", "--file=-", f"--directory={directory}"]
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors)
        except OSError as exc:
            raise DatabaseError(f"cannot run tar: {exc.strerror}") from exc
        assert proc.stdin is not None
        written = 0
        try:
            written = dump(repo, base.snapshot_id, tar_path(base.info.cluster), proc.stdin)  # type: ignore[arg-type]
            proc.stdin.close()
        except BrokenPipeError:
            pass
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        code = proc.wait()
        if code != 0:
            errors.seek(0)
            raise DatabaseError(
                f"extracting the base backup failed (tar exit {code}): {clients.last_line(errors.read())}"
            )
    return written


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def recovery_settings(
    restore_command: str,
    target_time: datetime.datetime | None,
    target_lsn: str | None,
    target_timeline: str = "latest",
) -> list[str]:
    lines = [
        f"restore_command = {_quote(restore_command)}",
        f"recovery_target_timeline = {_quote(target_timeline)}",
    ]
    if target_time is not None:
        lines.append(f"recovery_target_time = {_quote(target_time.isoformat(sep=' '))}")
    if target_lsn is not None:
        lines.append(f"recovery_target_lsn = {_quote(target_lsn)}")
    if target_time is not None or target_lsn is not None:
        lines.append("recovery_target_action = 'promote'")
    return lines


def write_recovery(directory: str, settings: Sequence[str]) -> None:
    """``recovery.signal`` and the settings appended to ``postgresql.auto.conf`` (later lines win)."""
    conf = os.path.join(directory, "postgresql.auto.conf")
    with open(conf, "a", encoding="utf-8") as f:
        f.write(
            "\n# written by amber pg restore: recover from the WAL archive\n" + "\n".join(settings) + "\n"
        )
        f.flush()
        os.fsync(f.fileno())
    signal = os.path.join(directory, "recovery.signal")
    with open(signal, "w", encoding="utf-8") as f:
        os.fsync(f.fileno())
    if os.geteuid() == 0:  # the files tar restored carry the server's owner: match it
        st = os.stat(os.path.join(directory, "PG_VERSION"))
        for path in (conf, signal, directory):
            os.chown(path, st.st_uid, st.st_gid)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def restore_point_in_time(
    repo: Repository,
    cluster: str,
    directory: str,
    restore_command: str,
    target_time: datetime.datetime | None = None,
    target_lsn: str | None = None,
    target_timeline: str = "latest",
) -> tuple[BaseBackup, int]:
    """The newest base backup before the target, extracted into the empty ``directory`` and set
    up to recover there from the archive when PostgreSQL starts on it."""
    if not restore_command.strip():
        raise UsageError("an empty restore_command cannot fetch WAL")
    lsn = parse_lsn(target_lsn) if target_lsn else None
    base = choose_base(base_backups(repo, cluster), target_time, lsn)
    prepare_target(directory)
    size = extract_base(repo, base, directory)
    write_recovery(directory, recovery_settings(restore_command, target_time, target_lsn, target_timeline))
    return base, size
