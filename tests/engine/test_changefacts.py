"""The facts the backup walk gathers for the ransomware check: each rule as a table."""

from __future__ import annotations

import gzip
import os
import random

import pytest

from amber.engine.changefacts import (
    ChangeFacts,
    entropy_bits,
    entropy_code,
    is_ransom_note,
    magic_mismatch,
    renamed_from,
)
from amber.repository import Node


@pytest.mark.parametrize(
    ("data", "low", "high"),
    [
        (b"", None, None),
        (b"a" * 500, None, None),  # too short to say
        (b"a" * 4096, 0.0, 0.2),
        (b"the budget report for the meeting " * 200, 0.0, 2.0),  # repetitive text: very compressible
        (bytes(random.Random(1).choices(b"0123456789 .", k=4096)), 2.0, 6.5),  # 12 symbols: 3.6 bits
        (random.Random(1).randbytes(4096), 7.9, 8.0),
        (random.Random(1).randbytes(1024), 7.9, 8.0),
        (gzip.compress(bytes(random.Random(2).choices(b"abcdefgh ", k=60000))), 7.5, 8.0),  # compressed
    ],
)
def test_entropy(data: bytes, low: float | None, high: float | None) -> None:
    bits = entropy_bits(entropy_code(data))
    if low is None:
        assert bits is None
    else:
        assert bits is not None and high is not None and low <= bits <= high


@pytest.mark.parametrize(
    ("name", "head", "mismatch"),
    [
        (b"a.pdf", b"%PDF-1.7\n", False),
        (b"a.pdf", random.Random(3).randbytes(16), True),
        (b"a.PNG", b"\x89PNG\r\n\x1a\n", False),
        (b"a.docx", b"PK\x03\x04xxxx", False),
        (b"a.docx", b"\x00\x01\x02\x03", True),
        (b"a.txt", random.Random(4).randbytes(16), False),  # no fixed magic: never a mismatch
        (b"a.pdf", b"%P", False),  # too short to judge
        (b"pdf", random.Random(5).randbytes(16), False),  # no extension
    ],
)
def test_magic(name: bytes, head: bytes, mismatch: bool) -> None:
    assert magic_mismatch(name, head) is mismatch


@pytest.mark.parametrize(
    ("name", "note"),
    [
        (b"HOW_TO_DECRYPT_FILES.txt", True),
        (b"!!!RECOVER-YOUR-FILES!!!.html", True),
        (b"README_FOR_DECRYPT.txt", True),
        (b"README.txt", False),
        (b"README.md", False),
        (b"restore.py", False),
        (b"decrypt_files.exe", False),
        (b"notes.txt", False),
    ],
)
def test_ransom_note_names(name: bytes, note: bool) -> None:
    assert is_ransom_note(name) is note


@pytest.mark.parametrize(
    ("new", "gone", "expect"),
    [
        (b"a.docx.locked", [b"a.docx"], b"a.docx"),
        (b"a.locked", [b"a.docx"], b"a.docx"),
        (b"a.docx", [b"b.docx"], None),
        (b"a.tar.gz.enc", [b"a.tar.gz"], b"a.tar.gz"),
        (b"a.docx", [b"a.docx"], b"a"),  # unreachable in practice: a deleted name is not new
    ],
)
def test_renamed_from(new: bytes, gone: list[bytes], expect: bytes | None) -> None:
    deleted = {n: Node(name=n, type="file") for n in gone}
    found = renamed_from(new, deleted)
    if expect is None:
        assert found is None
    elif expect == b"a":
        assert found is None or found.name == b"a.docx"
    else:
        assert found is not None and found.name == expect


def test_observe_counts_an_entropy_jump_and_ignores_same_content() -> None:
    f = ChangeFacts(has_parent=True)
    old = Node(name=b"a.txt", type="file", entropy=entropy_code(b"plain words here " * 100), sha256=b"1" * 32)
    new = Node(name=b"a.txt", type="file", entropy=entropy_code(os.urandom(4096)), sha256=b"2" * 32)
    f.observe_file(b"/home/a.txt", new, old, b"", None)
    same = Node(name=b"b.txt", type="file", entropy=old.entropy, sha256=old.sha256)
    f.observe_file(b"/home/b.txt", same, old, b"", None)
    assert (f.files_rewritten, f.entropy_jumps) == (1, 1)
    assert f.top_dirs["/home"] == 1 and f.examples[0].endswith("/home/a.txt")


def test_a_rename_is_not_also_a_deletion() -> None:
    f = ChangeFacts(has_parent=True)
    gone = {b"a.docx": Node(name=b"a.docx", type="file"), b"b.docx": Node(name=b"b.docx", type="file")}
    f.observe_dir(b"/d", gone)
    new = Node(name=b"a.docx.locked", type="file")
    f.observe_file(b"/d/a.docx.locked", new, None, b"", renamed_from(new.name, gone))
    assert (f.files_renamed, f.files_deleted, f.top_dirs["/d"]) == (1, 1, 2)
