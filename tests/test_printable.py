"""``amber.printable``: names from a backed-up machine made safe to show. Pure."""

from __future__ import annotations

import os

import pytest

from amber.printable import printable


@pytest.mark.parametrize(
    ("text", "keep", "shown"),
    [
        ("plain name.txt", "\n\t", "plain name.txt"),
        ("two\nlines\tand a tab", "\n\t", "two\nlines\tand a tab"),
        ("two\nlines", "", "two\\nlines"),
        ("bell\a and \x1b[31mred", "\n\t", "bell\\x07 and \\x1b[31mred"),
        ("carriage\rreturn", "\n\t", "carriage\\rreturn"),
        (os.fsdecode(b"caf\xff.txt"), "\n\t", "caf\\xff.txt"),  # a byte that is not UTF-8
        ("café ünïcode 名前", "", "café ünïcode 名前"),
        ("already \\x1b escaped", "", "already \\x1b escaped"),
        ("\u202eevil", "", "\\u202eevil"),  # a direction override is not printable either
    ],
)
def test_printable(text: str, keep: str, shown: str) -> None:
    out = printable(text, keep)
    assert out == shown
    out.encode()  # always encodable as UTF-8
