"""The quick start: what it leaves out, what it explains, what it leaves behind, what it says next."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from amber.engine.patterns import CACHEDIR_SIGNATURE, PathMatcher, is_cache_dir
from tests.conftest import AmberCli

TAG = CACHEDIR_SIGNATURE + b"\n# This file is a cache directory tag.\n"


def _checkout(root: Path) -> Path:
    """A source checkout with the things a backup should not carry."""
    for d in (".git/objects", ".venv/lib", "node_modules/pkg", "pkg/__pycache__", "build/lib", "cache",
              "docs"):  # fmt: skip
        (root / d).mkdir(parents=True)
    (root / ".git/HEAD").write_text("ref: refs/heads/main\n")
    (root / ".venv/lib/site.py").write_text("venv\n")
    (root / "node_modules/pkg/index.js").write_text("module\n")
    (root / "pkg/__pycache__/m.pyc").write_bytes(b"\0pyc")
    (root / "build/lib/m.py").write_text("built\n")
    (root / "cache/CACHEDIR.TAG").write_bytes(TAG)
    (root / "cache/blob").write_bytes(os.urandom(1000))
    (root / "pkg/m.py").write_text("print('hi')\n")
    (root / "docs/build").mkdir()  # only the top-level build/ is left out
    (root / "docs/build/page.html").write_text("<p>page</p>\n")
    (root / "README").write_text("readme\n")
    (root / "EMPTY").write_bytes(b"")
    os.link(root / "README", root / "README.hardlink")
    os.symlink("README", root / "README.link")
    return root


def test_quickstart_leaves_out_caches_and_says_what_next(tmp_path: Path) -> None:
    cli = AmberCli(tmp_path / "unused", tmp_path)
    for var in ("AMBER_REPOSITORY", "AMBER_PASSWORD"):
        del cli.env[var]
    src = _checkout(tmp_path / "checkout")
    out = cli.run("quickstart", str(src)).stdout
    home = tmp_path / "xdg-data" / "amber"
    repo, pw = home / "default", home / "password"
    assert f"export AMBER_REPOSITORY={repo}" in out and f"export AMBER_PASSWORD_FILE={pw}" in out
    assert "  amber snapshots" in out
    assert not list(home.glob("amber-restore-*")), "the restored copy is removed"
    assert "(removed after the comparison; --keep-restore keeps it)" in out
    # counts that add up: README, pkg/m.py, docs/build/page.html have content; EMPTY and the hard link
    assert "SHA-256 verified: 3 " in out
    assert "byte-compared with the source: 5 regular files (the verified ones, 1 empty and 1 further" in out
    assert "not compared: 1 symlink(s) or special file(s)" in out

    listed = cli.run("-r", str(repo), "--password-file", str(pw), "ls", "latest").stdout
    names = {line.removeprefix(str(src)) for line in listed.splitlines() if line.startswith(str(src))}
    assert {"/README", "/EMPTY", "/README.link", "/pkg/m.py", "/docs/build/page.html"} <= names, listed
    for gone in ("/.git", "/.venv", "/node_modules", "/pkg/__pycache__", "/build", "/cache/blob"):
        assert gone not in names, (gone, listed)

    kept = cli.run("quickstart", str(src), "--keep-restore").stdout
    [restored] = home.glob("amber-restore-*")
    assert f"into {restored}\n" in kept
    assert (Path(str(restored) + str(src)) / "README").read_text() == "readme\n"


def test_quickstart_takes_the_repository_like_the_global_option(tmp_path: Path) -> None:
    cli = AmberCli(tmp_path / "unused", tmp_path)
    for var in ("AMBER_REPOSITORY", "AMBER_PASSWORD"):
        del cli.env[var]
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_text("a\n")
    cli.run("quickstart", "-r", str(tmp_path / "own"), str(src))
    assert (tmp_path / "own" / "config").exists()
    out = cli.run("-r", str(tmp_path / "global"), "quickstart", str(src)).stdout
    assert (tmp_path / "global" / "config").exists()
    assert f"amber quickstart -r {tmp_path / 'global'} {src}" in out
    # AMBER_REPOSITORY from everyday use is not the quick start's repository
    cli.run("quickstart", str(src), env={"AMBER_REPOSITORY": str(tmp_path / "everyday")})
    assert not (tmp_path / "everyday").exists()


@pytest.mark.parametrize(("content", "cache"), [
    (TAG, True),
    (CACHEDIR_SIGNATURE, True),
    (b"Signature: 0000", False),
    (b"", False),
    (None, False),  # no tag at all
])  # fmt: skip
def test_cache_dir_tag(tmp_path: Path, content: bytes | None, cache: bool) -> None:
    d = tmp_path / "d"
    d.mkdir()
    if content is not None:
        (d / "CACHEDIR.TAG").write_bytes(content)
    assert is_cache_dir(os.fsencode(d)) is cache
    assert PathMatcher([], exclude_caches=True).matches(os.fsencode(d), b"d") is cache
    assert PathMatcher([]).matches(os.fsencode(d), b"d") is False
    assert is_cache_dir(os.fsencode(d / "CACHEDIR.TAG")) is False  # a file is never a cache directory


def test_backup_exclude_caches(cli: AmberCli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "cache").mkdir(parents=True)
    (src / "cache" / "CACHEDIR.TAG").write_bytes(TAG)
    (src / "cache" / "x").write_text("x")
    (src / "keep").write_text("k")
    cli.run("backup", str(src), "--exclude-caches")
    listed = cli.run("ls", "latest").stdout
    assert f"{src}/keep" in listed and f"{src}/cache" not in listed
    cli.run("backup", str(src))
    assert f"{src}/cache/x" in cli.run("ls", "latest").stdout


def test_exclude_caches_looks_for_the_tag_where_a_source_reads(repo: object, tmp_path: Path) -> None:
    """A mapped source (a filesystem snapshot mounted elsewhere): the tag is found at the read path."""
    from amber.engine.source import MappedSource
    from amber.engine.treewalk import walk
    from amber.repository import Repository
    from amber.services.backup import BackupRequest, backup_paths

    assert isinstance(repo, Repository)
    read = tmp_path / "mnt" / "me"
    (read / "cache").mkdir(parents=True)
    (read / "cache" / "CACHEDIR.TAG").write_bytes(TAG)
    (read / "cache" / "x").write_text("x")
    (read / "keep").write_text("k")
    recorded = tmp_path / "home" / "me"  # its parent exists (ancestors are read in place); it does not
    recorded.parent.mkdir()
    req = BackupRequest(paths=[str(recorded)], exclude_caches=True,
                        source=MappedSource(str(read), str(recorded)))  # fmt: skip
    with repo.lock():
        outcome = backup_paths(repo, req)
    names = {os.fsdecode(p) for p, _ in walk(repo.load_tree, outcome.snapshot.tree)}
    assert f"{recorded}/keep" in names and not any(n.startswith(f"{recorded}/cache") for n in names)
