"""The audit log: an append-only, hash-chained JSON-lines file, replicated into repositories.

Appends take an exclusive ``flock`` on the log, read the last record, write
one line and ``fsync``. A head file (``<log>.head``: last seq and hash) is
rewritten atomically after each append, so a cut-off tail is noticed locally
too; the repository copy (``audit/`` segments) is the anchor that a local
attacker cannot rewrite without the repository key.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import getpass
import hashlib
import json
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amber import __version__
from amber.errors import AmberError, ConfigError, IntegrityError, from_os_error
from amber.ops.audit import chain as audit_chain
from amber.ops.audit.chain import ChainVerdict, ReplicaVerdict
from amber.ops.config.model import default_config_path, load_config
from amber.ops.private import private_dir, write_private
from amber.repository import Repository
from amber.repository.audit_store import AuditSegment, load_segments, save_segment

_TAIL = 1 << 16


def default_path() -> Path:
    override = os.environ.get("AMBER_AUDIT_LOG")
    if override:
        return Path(override).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state, "amber", "audit.log")


def resolve_path(config_path: str | None = None) -> Path:
    """AMBER_AUDIT_LOG, else the config's ``[state] audit_log``, else the default.

    A config that does not load does not stop auditing: its own command reports
    the config error, and the record goes to the default log.
    """
    if os.environ.get("AMBER_AUDIT_LOG"):
        return default_path()
    path = config_path or default_config_path()
    if os.path.exists(path):
        with contextlib.suppress(ConfigError):
            return Path(load_config(path).state.audit_log)
    return default_path()


def who() -> tuple[str, int]:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = ""
    sudo = os.environ.get("SUDO_USER")
    return (f"{user} (sudo by {sudo})" if sudo and sudo != user else user), os.getuid()


@dataclass
class AuditLog:
    path: Path

    @property
    def head_path(self) -> Path:
        return self.path.with_name(self.path.name + ".head")

    # -- writing ----------------------------------------------------------
    def append(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Chain ``fields`` after the last record and write it durably."""
        try:
            private_dir(self.path.parent)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            os.fchmod(fd, 0o600)
        except OSError as exc:
            raise from_os_error(exc, str(self.path)) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            record = audit_chain.chain(_last_record(fd), fields)
            os.write(fd, audit_chain.encode(record))
            os.fsync(fd)
            self._write_head(record)
            return record
        except OSError as exc:
            raise from_os_error(exc, str(self.path)) from exc
        finally:
            os.close(fd)  # also drops the flock

    def _write_head(self, record: Mapping[str, Any]) -> None:
        write_private(self.head_path, json.dumps({"seq": record["seq"], "hash": record["hash"]}).encode())

    # -- reading ----------------------------------------------------------
    def lines(self) -> list[bytes]:
        try:
            with open(self.path, "rb") as f:
                return [line for line in f.read().split(b"\n") if line.strip()]
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise from_os_error(exc, str(self.path)) from exc

    def records(self) -> list[dict[str, Any] | None]:
        return audit_chain.parse_lines(self.lines())

    def head(self) -> tuple[int, str] | None:
        try:
            doc = json.loads(self.head_path.read_text(encoding="ascii"))
            return int(doc["seq"]), str(doc["hash"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return (-1, "")

    def verify(self) -> ChainVerdict:
        """The chain, then the head file: a tail cut off (with the head left) shows here."""
        records = self.records()
        verdict = audit_chain.verify_chain(records)
        if not verdict.ok:
            return verdict
        head = self.head()
        if head is None:
            return verdict
        seq, digest = head
        if seq < 0:
            return ChainVerdict(False, verdict.count, verdict.head, verdict.count + 1, "head file is damaged")
        if seq > verdict.count:
            why = f"log ends at record {verdict.count} but record {seq} was written (truncated)"
            return ChainVerdict(False, verdict.count, verdict.head, verdict.count + 1, why)
        last = records[seq - 1] if seq else None
        if seq and last is not None and last.get("hash") != digest:
            why = f"record {seq} differs from the head file"
            return ChainVerdict(False, verdict.count, verdict.head, seq, why)
        return verdict


def _last_record(fd: int) -> dict[str, Any] | None:
    """The last record of the open log, read from its tail."""
    size = os.fstat(fd).st_size
    if size == 0:
        return None
    start = max(0, size - _TAIL)
    while True:
        data = os.pread(fd, size - start, start)
        lines = [line for line in data.split(b"\n") if line.strip()]
        if len(lines) > 1 or start == 0:
            break
        start = max(0, start - _TAIL * 4)
    parsed = audit_chain.parse_lines(lines[-1:])
    if not parsed or parsed[0] is None:
        raise IntegrityError("audit log: the last record is damaged; run 'amber audit verify'")
    return parsed[0]


# -- recording operations -------------------------------------------------
def operation_fields(command: str, args: Sequence[str], exit_code: int, error: str = "",
                     repository: str = "", when: dt.datetime | None = None) -> dict[str, Any]:  # fmt: skip
    user, uid = who()
    return {
        "time": (when or dt.datetime.now(dt.UTC)).isoformat(timespec="microseconds"),
        "user": user,
        "uid": uid,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "command": command,
        "args": audit_chain.redact_args(args),
        "repository": audit_chain.redact_url(repository),
        "exit_code": exit_code,
        "error": audit_chain.redact_url(error),
        "version": __version__,
    }


def record_config_change(log: AuditLog, config_path: str, digest: str) -> bool:
    """Append a ``config-change`` record when the config file differs from the last one seen."""
    last = None
    for record in reversed(log.records()):
        if record is not None and record.get("config_sha256"):
            last = record["config_sha256"]
            break
    if last == digest:
        return False
    fields = operation_fields("config-change", [config_path], 0)
    fields["config_sha256"] = digest
    log.append(fields)
    return True


# -- replication ----------------------------------------------------------
def _segments_for(repo: Repository, log_id: str) -> Iterator[AuditSegment]:
    return (s for s in load_segments(repo) if s.log_id == log_id)


def replica_hashes(repo: Repository, log_id: str, local_last: int) -> dict[int, str]:
    """seq -> hash recomputed from the repository's copies (the claimed hash is not trusted),
    for seqs up to ``local_last`` and the first one after it (a local log cut short): what
    comparing with the local log needs, however many records a key holder stored. A seq
    stored twice with different contents gets "" (it matches no local record)."""
    hashes: dict[int, str] = {}
    beyond: tuple[int, str] | None = None
    for segment in _segments_for(repo, log_id):
        for record in audit_chain.parse_lines(segment.records):
            if record is None or not isinstance(record.get("seq"), int):
                raise IntegrityError(f"audit segment of log {log_id[:8]} holds a malformed record")
            seq = int(record["seq"])
            if seq <= local_last:
                digest = audit_chain.record_hash(record)
                # two different stored copies of one record: neither matches, in any listing order
                hashes[seq] = digest if hashes.get(seq, digest) == digest else ""
            elif beyond is None or seq < beyond[0]:
                beyond = (seq, audit_chain.record_hash(record))
    if beyond is not None:
        hashes[beyond[0]] = beyond[1]
    return hashes


def push(repo: Repository, log: AuditLog, trust_cache: bool = False) -> int:
    """Upload the records the repository lacks; returns how many. Refuses a broken chain.

    With ``trust_cache`` the local note of what this repository already holds
    (``<log>.pushed``) replaces listing its segments, so the push after every
    command stays cheap; ``audit push`` and ``audit verify`` always list.
    """
    lines = log.lines()
    records = audit_chain.parse_lines(lines)
    if not records:
        return 0
    verdict = audit_chain.verify_chain(records)
    if not verdict.ok:
        raise IntegrityError(f"audit log is broken at record {verdict.bad_seq}: {verdict.reason}")
    good = [r for r in records if r is not None]
    log_id = str(good[0]["hash"])
    start = _cached_head(log, repo.id, good) if trust_cache else None
    if start is None:
        have = replica_hashes(repo, log_id, int(good[-1]["seq"]))
        compared = audit_chain.compare_with_replica(good, have)
        if not compared.ok:
            raise IntegrityError(f"audit log disagrees with the repository at record {compared.bad_seq}: "
                                 f"{compared.reason}")  # fmt: skip
        start = max(have, default=0)
    new = lines[start:]
    if new:
        save_segment(repo, AuditSegment(log_id, socket.gethostname(), start + 1, new))
    _remember_head(log, repo.id, good[-1])
    return len(new)


def _pushed_path(log: AuditLog) -> Path:
    return log.path.with_name(log.path.name + ".pushed")


def _cached_head(log: AuditLog, repo_id: str, records: Sequence[Mapping[str, Any]]) -> int | None:
    """The seq this repository holds up to, if the note matches the local chain there."""
    try:
        note = json.loads(_pushed_path(log).read_text(encoding="ascii")).get(repo_id)
        seq, digest = int(note["seq"]), str(note["hash"])
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    if 1 <= seq <= len(records) and records[seq - 1].get("hash") == digest:
        return seq
    return None


def _remember_head(log: AuditLog, repo_id: str, last: Mapping[str, Any]) -> None:
    path = _pushed_path(log)
    try:
        notes = json.loads(path.read_text(encoding="ascii"))
        if not isinstance(notes, dict):
            notes = {}
    except (OSError, ValueError):
        notes = {}
    notes[repo_id] = {"seq": last["seq"], "hash": last["hash"]}
    with contextlib.suppress(OSError):
        write_private(path, json.dumps(notes).encode())


def push_quietly(repo: Repository, log: AuditLog) -> str:
    """Push for callers whose own work must not fail because of the audit copy; returns a warning."""
    try:
        push(repo, log, trust_cache=True)
    except AmberError as exc:
        return f"audit log not replicated: {exc.message}"
    return ""


def verify_against(repo: Repository, log: AuditLog) -> ReplicaVerdict:
    records = [r for r in log.records() if r is not None]
    if not records:
        host = socket.gethostname()
        mine = any(s.host == host for s in load_segments(repo))
        why = f"local log is empty but the repository holds records from {host}" if mine else ""
        return ReplicaVerdict(not mine, 1 if mine else 0, why)
    have = replica_hashes(repo, str(records[0]["hash"]), int(records[-1]["seq"]))
    return audit_chain.compare_with_replica(records, have)


def file_sha256(path: str) -> str:
    """SHA-256 of a file's bytes, or "" when it cannot be read."""
    with contextlib.suppress(OSError), open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()
    return ""
