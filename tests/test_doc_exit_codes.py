"""The exit codes the docs name are the ones `amber.errors` defines.

Three stale codes were found by hand in design.md and the README; this keeps them true.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from amber import errors

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

ERROR_CODES = {
    name: cls.exit_code
    for name, cls in inspect.getmembers(errors, inspect.isclass)
    if issubclass(cls, errors.AmberError) and cls.__module__ == errors.__name__
}
# "`LeaseLost`, exit 31", "`MountFailed` (exit 29)" or "exit 36 (`SuspiciousBackup`)"
NAME_THEN_CODE = re.compile(r"`(\w+)`[ ,(]{1,3}exit (\d+)")
CODE_THEN_NAME = re.compile(r"exit (\d+) \(`(\w+)`\)")


def named_codes(text: str) -> list[tuple[str, int]]:
    pairs = [(name, int(code)) for name, code in NAME_THEN_CODE.findall(text)]
    pairs += [(name, int(code)) for code, name in CODE_THEN_NAME.findall(text)]
    return [(name, code) for name, code in pairs if name in ERROR_CODES]


def test_the_pattern_finds_both_spellings() -> None:
    text = "raises `LeaseLost`, exit 31 and `MountFailed` (exit 9) then exit 36 (`SuspiciousBackup`)"
    assert named_codes(text) == [("LeaseLost", 31), ("MountFailed", 9), ("SuspiciousBackup", 36)]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_named_exit_code_matches_errors_py(doc: Path) -> None:
    wrong = [
        f"`{name}` documented as exit {code}, errors.py says {ERROR_CODES[name]}"
        for name, code in named_codes(doc.read_text())
        if ERROR_CODES[name] != code
    ]
    assert not wrong, wrong


def test_the_readme_table_lists_every_exit_code() -> None:
    table = {int(m) for m in re.findall(r"^\| (\d+) \|", (ROOT / "README.md").read_text(), re.M)}
    missing = sorted(set(ERROR_CODES.values()) - table)
    assert not missing, f"exit codes missing from README's table: {missing}"
