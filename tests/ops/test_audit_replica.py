"""The audit log's repository copy compared with the local log, whatever a key holder stored."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from amber.ops.audit import chain as audit_chain
from amber.ops.audit import log as audit_log
from amber.ops.audit.log import AuditLog
from amber.repository import Repository
from amber.repository.audit_store import AuditSegment, save_segment


def local_log(tmp_path: Path, n: int) -> tuple[AuditLog, list[dict[str, object]]]:
    log = AuditLog(tmp_path / "audit" / "audit.log")
    for i in range(n):
        log.append({"command": "backup", "args": [str(i)]})
    return log, [r for r in log.records() if r is not None]


def forged(first: dict[str, object], seqs: range) -> list[bytes]:
    """Records that continue a log in the repository only (a key holder's, or a cut local tail)."""
    return [json.dumps({"seq": seq, "prev": "x", "command": "forged", "hash": "y"}).encode() for seq in seqs]


def test_many_stored_records_after_the_local_log_keep_one_and_still_show_the_cut(
    repo: Repository, tmp_path: Path
) -> None:
    log, records = local_log(tmp_path, 5)
    assert audit_log.push(repo, log) == 5
    log_id = str(records[0]["hash"])
    save_segment(repo, AuditSegment(log_id, socket.gethostname(), 9, forged(records[0], range(9, 20_009))))
    save_segment(repo, AuditSegment(log_id, socket.gethostname(), 7, forged(records[0], range(7, 8))))
    have = audit_log.replica_hashes(repo, log_id, 5)
    assert sorted(have) == [1, 2, 3, 4, 5, 7]  # the local range, and the first stored after it
    assert have[7] == audit_chain.record_hash(json.loads(forged(records[0], range(7, 8))[0]))
    verdict = audit_log.verify_against(repo, log)
    assert not verdict.ok and verdict.bad_seq == 7 and "missing locally (truncated)" in verdict.reason


def test_a_stored_copy_that_differs_is_found_in_any_listing_order(repo: Repository, tmp_path: Path) -> None:
    log, records = local_log(tmp_path, 4)
    assert audit_log.push(repo, log) == 4
    assert audit_log.verify_against(repo, log).ok
    log.append({"command": "check", "args": []})
    assert audit_log.push(repo, log) == 1  # only the new record
    assert audit_log.verify_against(repo, log).ok
    changed = {**records[1], "command": "forget"}
    save_segment(repo, AuditSegment(str(records[0]["hash"]), "elsewhere", 2, [json.dumps(changed).encode()]))
    verdict = audit_log.verify_against(repo, log)
    assert not verdict.ok and verdict.bad_seq == 2 and "differs" in verdict.reason
