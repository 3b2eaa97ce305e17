"""``amber manifest SNAPSHOT[:SUBPATH]``: the README's recipe, checked with the real ``sha256sum -c``."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from amber.services.browse import manifest_line
from tests.conftest import AmberCli

# names sha256sum has to unescape (\\, \n, \r), or reads raw (other control characters)
ODD_NAMES = [b"plain.txt", b"with space", b"back\\slash", b"new\nline", b"carriage\rreturn",
             b"esc\x1b[31mred", b"tab\there", b"\xff\xfe-not-utf8", b"-dash"]  # fmt: skip


def _source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    sub = src / "dir" / "sub"
    sub.mkdir(parents=True)
    (src / "outside.txt").write_bytes(b"not in the subpath\n")
    for i, name in enumerate(ODD_NAMES):
        with open(os.path.join(os.fsencode(src / "dir"), name), "wb") as f:
            f.write(b"content %d\n" % i * (i + 1))
    (sub / "deep.bin").write_bytes(os.urandom(3000))
    (sub / "empty").write_bytes(b"")
    return src


def _sha256sum_check(manifest: bytes, cwd: Path) -> list[bytes]:
    listing = cwd.parent / (cwd.name + ".sha256")
    listing.write_bytes(manifest)
    proc = subprocess.run(["sha256sum", "--strict", "-c", str(listing)], cwd=cwd, capture_output=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [line for line in proc.stdout.split(b"\n") if line]


def test_readme_recipe_restore_subpath_then_sha256sum(cli: AmberCli, tmp_path: Path) -> None:
    src = _source(tmp_path)
    cli.run("backup", str(src))
    sub = f"latest:{src}/dir"
    target = tmp_path / "restore"
    cli.run("restore", sub, "--target", str(target))
    manifest = cli.run("manifest", sub).stdout_bytes
    checked = _sha256sum_check(manifest, target)
    assert len(checked) == len(ODD_NAMES) + 2 and all(line.endswith(b": OK") for line in checked)
    assert b"outside.txt" not in manifest and b"/dir/" not in manifest  # relative to the subpath
    assert b"sub/deep.bin" in manifest


def test_whole_snapshot_and_absolute_paths(cli: AmberCli, tmp_path: Path) -> None:
    src = _source(tmp_path)
    cli.run("backup", str(src))
    target = tmp_path / "all"
    cli.run("restore", "latest", "--target", str(target))
    _sha256sum_check(cli.run("manifest", "latest").stdout_bytes, target)
    absolute = cli.run("manifest", f"latest:{src}/dir/sub", "--absolute").stdout_bytes
    assert absolute.count(b"\n") == 2
    assert all(line.split(b"  ", 1)[1].startswith(os.fsencode(src)) for line in absolute.split(b"\n") if line)
    _sha256sum_check(absolute, tmp_path)  # against the live source


def test_single_file_subpath(cli: AmberCli, tmp_path: Path) -> None:
    src = _source(tmp_path)
    cli.run("backup", str(src))
    ref = f"latest:{src}/dir/sub/deep.bin"
    target = tmp_path / "one"
    cli.run("restore", ref, "--target", str(target))
    manifest = cli.run("manifest", ref).stdout_bytes
    assert manifest.endswith(b"  deep.bin\n") and manifest.count(b"\n") == 1
    _sha256sum_check(manifest, target)


def test_missing_subpath_is_a_one_line_error(cli: AmberCli, tmp_path: Path) -> None:
    src = _source(tmp_path)
    cli.run("backup", str(src))
    res = cli.run("manifest", f"latest:{src}/nope", check=False)
    assert res.returncode == 15 and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr


@pytest.mark.parametrize(
    ("path", "terminal", "line"),
    [
        (b"a/b", False, b"00  a/b\n"),
        (b"back\\slash", False, b"\\00  back\\\\slash\n"),
        (b"new\nline", False, b"\\00  new\\nline\n"),
        (b"cr\rx", False, b"\\00  cr\\rx\n"),
        (b"esc\x1b[1m", False, b"00  esc\x1b[1m\n"),  # sha256sum reads it raw
        (b"esc\x1b[1m", True, b"00  esc\\x1b[1m\n"),  # a terminal never sees it
        (b"del\x7f", True, b"00  del\\x7f\n"),
        (b"new\nline\x01", True, b"\\00  new\\nline\\x01\n"),
        (b"\xff", True, b"00  \xff\n"),
    ],
)
def test_manifest_line_escaping(path: bytes, terminal: bool, line: bytes) -> None:
    assert manifest_line(b"\0", path, terminal) == line


def test_on_a_terminal_control_characters_are_escaped(cli: AmberCli, tmp_path: Path) -> None:
    src = _source(tmp_path)
    cli.run("backup", str(src))
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "amber", "manifest", f"latest:{src}/dir"],
            stdout=follower, stderr=subprocess.PIPE, env=cli.env, timeout=120,
        )  # fmt: skip
        os.close(follower)
        follower = -1
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other side is closed and drained
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    assert proc.returncode == 0, proc.stderr
    assert b"esc\\x1b[31mred" in shown and b"\x1b" not in shown
