"""Terminal escape sequences in host names, tags, paths and errors never reach the terminal raw.

Any key holder chooses the host name and tags of the snapshots it writes, and
file names come from the backed-up machine; ``snapshots``, ``ls``, ``find``
and error lines print them with control characters escaped
(``cli.output.echo`` and ``show_path``). JSON output is escaped by its encoder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from amber.cli.output import safe_text, show_path
from tests.conftest import AmberCli

EVIL = "\x1b]0;owned\x07\x1b[2J\x9b31m\r"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain host", "plain host"),
        ("a\x1b[31mb", "a\\x1b[31mb"),
        ("bell\x07", "bell\\x07"),
        ("csi\x9b", "csi\\x9b"),
        ("cr\roverwrite", "cr\\roverwrite"),
        ("two\nlines", "two\\nlines"),
        ("tab\there", "tab\\there"),
        ("caf\u00e9 \u65e5\u672c", "caf\u00e9 \u65e5\u672c"),
    ],
)
def test_show_path_escapes_every_control_character(text: str, shown: str) -> None:
    assert show_path(text) == shown
    assert show_path(text.encode()) == shown


def test_safe_text_keeps_the_messages_own_line_breaks() -> None:
    assert safe_text("Files: 1\nDirs: \x1b[2J2\tok") == "Files: 1\nDirs: \\x1b[2J2\tok"


def _no_raw_controls(text: str) -> None:
    assert not any(c in text for c in "\x1b\x07\x9b\r"), repr(text)


def test_snapshots_ls_find_and_errors_escape_controls(cli: AmberCli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / f"name{EVIL}.txt").write_bytes(b"x")
    cli.run("backup", "--host", f"host{EVIL}", "--tag", f"tag{EVIL}", str(src))

    listing = cli.run("snapshots")
    _no_raw_controls(listing.stdout + listing.stderr)
    assert "host\\x1b]0;owned\\x07" in listing.stdout
    assert "tag\\x1b" in listing.stdout

    for args in (("ls", "latest"), ("ls", "-l", "latest"), ("find", "name*")):
        out = cli.run(*args)
        _no_raw_controls(out.stdout + out.stderr)
        assert "name\\x1b]0;owned" in out.stdout

    missing = cli.run("dump", "latest", f"/nope{EVIL}", check=False)
    assert missing.returncode != 0
    _no_raw_controls(missing.stderr)
    assert len(missing.stderr.strip().splitlines()) == 1

    doc = json.loads(cli.run("snapshots", "--json").stdout)  # JSON keeps the real text
    assert doc[0]["hostname"] == f"host{EVIL}"
