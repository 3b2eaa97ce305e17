"""Audit-log segments stored in the repository (``audit/<id>``), encrypted like snapshots.

A segment is a run of consecutive records of one local audit log, kept as the
exact JSON lines the log holds, so their hashes can be recomputed. Segments are
new immutable objects, so append-only repositories accept them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import msgspec

from amber.errors import IntegrityError, ObjectNotFound, ObjectTooLarge
from amber.repository.crypto import OVERHEAD
from amber.repository.limits import OBJECT_LIMITS
from amber.repository.repo import Repository
from amber.repository.sealing import Kind
from amber.storage.base import FileType, Handle


class AuditSegment(msgspec.Struct):
    log_id: str  # hash of the log's first record: names one local log
    host: str
    first_seq: int
    records: list[bytes]  # JSON lines, in order
    version: int = 1


def save_segment(repo: Repository, segment: AuditSegment) -> str:
    """Save ``segment``, as several consecutive ones if it would be over the size limit
    (readers refuse larger objects); returns the name of the last one."""
    plain = msgspec.msgpack.encode(segment)
    limit = OBJECT_LIMITS[FileType.AUDIT]
    if len(plain) + OVERHEAD > limit:
        half = len(segment.records) // 2
        if not half:
            raise ObjectTooLarge(f"an audit record of {len(plain)} bytes is over the {limit}-byte limit")
        head, tail = segment.records[:half], segment.records[half:]
        save_segment(repo, msgspec.structs.replace(segment, records=head))
        later = segment.first_seq + half
        return save_segment(repo, msgspec.structs.replace(segment, first_seq=later, records=tail))
    data = repo.sealer.seal(Kind.AUDIT, plain)
    name = hashlib.sha256(data).hexdigest()
    repo.backend.save(Handle(FileType.AUDIT, name), data)
    return name


def load_segment(repo: Repository, name: str) -> AuditSegment:
    raw = repo.backend.load(Handle(FileType.AUDIT, name), limit=OBJECT_LIMITS[FileType.AUDIT])
    if hashlib.sha256(raw).hexdigest() != name:
        raise IntegrityError(f"audit segment {name[:8]}: content does not match its name")
    try:
        return msgspec.msgpack.decode(repo.sealer.open(Kind.AUDIT, raw), type=AuditSegment)
    except (msgspec.DecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        raise IntegrityError(f"audit segment {name[:8]} is malformed") from exc


def load_segments(repo: Repository, errors: list[str] | None = None) -> Iterator[AuditSegment]:
    """Every readable segment, one at a time (a key holder may have stored many, each up to
    the size limit); names of unreadable ones go to ``errors``."""
    for fi in sorted(repo.backend.list(FileType.AUDIT), key=lambda f: f.name):
        try:
            segment = load_segment(repo, fi.name)
        except (IntegrityError, ObjectNotFound):
            if errors is not None:
                errors.append(fi.name)
            continue
        yield segment
