"""The audit hash chain (pure core): every kind of tampering breaks it at the right record."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from amber.ops.audit import chain as ac

Records = list[dict[str, Any]]


def make_chain(n: int) -> Records:
    records: Records = []
    for i in range(n):
        records.append(ac.chain(records[-1] if records else None, {"command": "backup", "args": [str(i)]}))
    return records


def modify(rs: Records) -> Records:
    rs[2]["args"] = ["evil"]
    return rs


def modify_and_rehash(rs: Records) -> Records:
    rs[2]["args"] = ["evil"]
    rs[2]["hash"] = ac.record_hash(rs[2])  # the next record still links to the old hash
    return rs


def delete(rs: Records) -> Records:
    del rs[2]
    return rs


def delete_two(rs: Records) -> Records:
    del rs[1:3]
    return rs


def reorder(rs: Records) -> Records:
    rs[1], rs[2] = rs[2], rs[1]
    return rs


def renumber_after_delete(rs: Records) -> Records:
    del rs[2]
    for r in rs[2:]:
        r["seq"] -= 1
    return rs


def insert(rs: Records) -> Records:
    fake = ac.chain(rs[1], {"command": "forget", "args": []})
    rs.insert(2, fake)
    return rs


def break_json(rs: Records) -> Records:
    rs[3] = None  # type: ignore[call-overload]
    return rs


@pytest.mark.parametrize(
    ("tamper", "bad_seq", "reason"),
    [
        (modify, 3, "modified"),
        (modify_and_rehash, 4, "link"),
        (delete, 3, "record 3 missing"),
        (delete_two, 2, "records 2..3 missing"),
        (reorder, 2, "out of order"),
        (renumber_after_delete, 3, "link"),
        (insert, 4, "duplicated"),
        (break_json, 4, "not valid JSON"),
    ],
)
def test_tampering_is_found_at_the_first_bad_record(
    tamper: Callable[[Records], Records], bad_seq: int, reason: str
) -> None:
    records = tamper(copy.deepcopy(make_chain(6)))
    verdict = ac.verify_chain(records)
    assert not verdict.ok
    assert verdict.bad_seq == bad_seq
    assert reason in verdict.reason


def test_intact_chain_verifies_and_reports_its_head() -> None:
    records = make_chain(5)
    verdict = ac.verify_chain(records)
    assert verdict.ok and verdict.count == 5 and verdict.head == records[-1]["hash"]
    assert records[0]["prev"] == ac.GENESIS and [r["seq"] for r in records] == [1, 2, 3, 4, 5]


def test_encoded_lines_parse_back_to_the_same_chain() -> None:
    records = make_chain(3)
    lines = [ac.encode(r) for r in records]
    assert ac.verify_chain(ac.parse_lines(lines)).ok
    assert ac.parse_lines([b"not json", b"[1]"]) == [None, None]


@pytest.mark.parametrize(
    ("replica", "ok", "bad_seq"),
    [
        ({}, True, 0),
        ({1: "h1", 2: "h2"}, True, 0),
        ({1: "h1", 2: "xx"}, False, 2),
        ({1: "h1", 2: "h2", 3: "h3", 4: "h4"}, False, 4),  # the local tail was cut off
    ],
)
def test_comparison_with_the_repository_copy(replica: dict[int, str], ok: bool, bad_seq: int) -> None:
    local = [{"seq": i, "hash": f"h{i}"} for i in (1, 2, 3)]
    verdict = ac.compare_with_replica(local, replica)
    assert (verdict.ok, verdict.bad_seq) == (ok, bad_seq)
    if ok:
        assert verdict.unreplicated == 3 - len(replica)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["backup", "/home"], ["backup", "/home"]),
        (["--password-command", "echo hunter2", "snapshots"], ["--password-command", "***", "snapshots"]),
        (["--password-command=echo hunter2"], ["--password-command=***"]),
        (["--password-file", "/etc/pw"], ["--password-file", "/etc/pw"]),
        (["-r", "sftp://bob:hunter2@host/repo"], ["-r", "sftp://bob:***@host/repo"]),
        (["--token", "abc", "x"], ["--token", "***", "x"]),
    ],
)
def test_secrets_never_reach_the_log(args: list[str], expected: list[str]) -> None:
    assert ac.redact_args(args) == expected
