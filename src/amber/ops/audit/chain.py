"""The audit log's hash chain. Pure: records in, verdicts out, no I/O.

Each record is one JSON object. ``hash`` is the SHA-256 of the canonical JSON
(sorted keys, no spaces, UTF-8) of every other field, and ``prev`` is the hash
of the record before (64 zeros for the first). ``seq`` counts from 1. A record
that is changed, removed, inserted or moved breaks the chain at a sequence
number that :func:`verify_chain` reports.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from amber.redact import redact

GENESIS = "0" * 64
_SECRET_OPTION = re.compile(r"^--?[\w-]*(password|passwd|secret|token|key-material)[\w-]*$", re.I)
_SECRET_PAIR = re.compile(r"^(--?[\w-]*(?:password|passwd|secret|token)[\w-]*=)(.*)$", re.I)
# Options whose value is a path or a reference, never the secret itself.
_SAFE_OPTIONS = frozenset({"--password-file", "--new-password-file", "--password-env"})


def canonical(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def record_hash(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical({k: v for k, v in record.items() if k != "hash"})).hexdigest()


def encodable(value: Any) -> Any:
    """``value`` with every string UTF-8 encodable: an argument or message naming a file whose
    name is not UTF-8 holds lone surrogates (``os.fsdecode``); they become ``\\xNN``."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            raw = value.encode("utf-8", "surrogateescape" if _only_escapes(value) else "backslashreplace")
            return raw.decode("utf-8", "backslashreplace")
        return value
    if isinstance(value, Mapping):
        return {k: encodable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encodable(v) for v in value]
    return value


def _only_escapes(text: str) -> bool:
    return all(0xDC80 <= ord(c) <= 0xDCFF for c in text if 0xD800 <= ord(c) <= 0xDFFF)


def chain(prev: Mapping[str, Any] | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The next record after ``prev`` (None: the first) holding ``fields``."""
    record: dict[str, Any] = encodable(dict(fields))
    record["seq"] = int(prev["seq"]) + 1 if prev else 1
    record["prev"] = str(prev["hash"]) if prev else GENESIS
    record.pop("hash", None)
    record["hash"] = record_hash(record)
    return record


def encode(record: Mapping[str, Any]) -> bytes:
    """One line of the log file (canonical JSON plus a newline)."""
    return canonical(record) + b"\n"


@dataclass(frozen=True)
class ChainVerdict:
    ok: bool
    count: int  # records that verified before the first break
    head: str  # hash of the last good record (GENESIS when none)
    bad_seq: int = 0  # first sequence number that is wrong or missing
    reason: str = ""


def parse_lines(lines: Iterable[bytes]) -> list[dict[str, Any] | None]:
    """Decode log lines; a line that is not a JSON object (or nests too deep) becomes None."""
    out: list[dict[str, Any] | None] = []
    for line in lines:
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: nested too deep, e.g. a crafted copy
            out.append(None)
            continue
        out.append(obj if isinstance(obj, dict) else None)
    return out


def verify_chain(records: Sequence[Mapping[str, Any] | None], start_seq: int = 1,
                 start_prev: str = GENESIS) -> ChainVerdict:  # fmt: skip
    """Check sequence numbers, links and hashes, stopping at the first break."""
    prev_hash, expected = start_prev, start_seq
    for count, record in enumerate(records):
        reason = _link_problem(record, expected, prev_hash)
        if (
            reason.startswith("record")
            and "missing" in reason
            and any(r is not None and r.get("seq") == expected for r in records[count + 1 :])
        ):
            found = record.get("seq") if record else "?"
            reason = f"records out of order: record {expected} comes after record {found}"
        if reason:
            return ChainVerdict(False, count, prev_hash, expected, reason)
        assert record is not None
        prev_hash, expected = str(record["hash"]), expected + 1
    return ChainVerdict(True, len(records), prev_hash)


def _link_problem(record: Mapping[str, Any] | None, expected: int, prev_hash: str) -> str:
    if record is None:
        return "record is not valid JSON"
    seq = record.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool):
        return "record has no sequence number"
    if seq > expected:
        gap = f" {expected}" if seq == expected + 1 else f"s {expected}..{seq - 1}"
        return f"record{gap} missing"
    if seq < expected:
        return f"record {seq} out of order or duplicated (expected {expected})"
    if record.get("prev") != prev_hash:
        return "link to the previous record is broken (removed, inserted or reordered)"
    if record.get("hash") != record_hash(record):
        return "record content does not match its hash (modified)"
    return ""


@dataclass(frozen=True)
class ReplicaVerdict:
    ok: bool
    bad_seq: int = 0
    reason: str = ""
    unreplicated: int = 0  # local records the repository does not have yet


def compare_with_replica(local: Sequence[Mapping[str, Any]], replica: Mapping[int, str]) -> ReplicaVerdict:
    """Compare a verified local chain with the hashes the repository holds, by sequence number.

    Detects a local record that differs from its replicated copy and a local
    log whose tail was cut off (the repository knows later records).
    """
    local_hashes = {int(r["seq"]): str(r["hash"]) for r in local}
    for seq in sorted(replica):
        mine = local_hashes.get(seq)
        if mine is None:
            why = f"record {seq} is in the repository but missing locally (truncated)"
            return ReplicaVerdict(False, seq, why)
        if mine != replica[seq]:
            return ReplicaVerdict(False, seq, f"record {seq} differs from the repository copy")
    return ReplicaVerdict(True, unreplicated=sum(1 for s in local_hashes if s not in replica))


def redact_args(args: Sequence[str]) -> list[str]:
    """Command-line arguments without secrets: option values and URL passwords become ***."""
    out: list[str] = []
    hide_next = False
    for arg in args:
        if hide_next:
            out.append("***")
            hide_next = False
            continue
        pair = _SECRET_PAIR.match(arg)
        if pair and pair.group(1)[:-1] not in _SAFE_OPTIONS:
            out.append(pair.group(1) + "***")
            continue
        if _SECRET_OPTION.match(arg) and arg not in _SAFE_OPTIONS:
            hide_next = True
        out.append(redact_url(arg))
    return out


def redact_url(text: str) -> str:
    """Every URL's credentials in ``text`` masked (:func:`amber.redact.redact`)."""
    return redact(text)
