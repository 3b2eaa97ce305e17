"""find, history and catalog through the real CLI: same answers with and without the catalog,
damaged catalogs rebuilt, concurrent writers and searchers, the opt-out."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.conftest import AmberCli


def _tree(src: Path) -> None:
    (src / "docs" / "sub").mkdir(parents=True)
    (src / "docs" / "report.odt").write_bytes(b"report v1")
    (src / "docs" / "sub" / "Invoice_2026.pdf").write_bytes(b"%PDF invoice" * 100)
    (src / "notes.txt").write_bytes(b"notes")
    (src / "photo.JPG").write_bytes(os.urandom(5000))
    os.symlink("notes.txt", src / "link")


def _json_lines(cli: AmberCli, *args: str) -> list[dict[str, object]]:
    return [json.loads(x) for x in cli.run(*args).stdout.splitlines()]


def _catalog_file(cli: AmberCli) -> Path:
    found = list((Path(cli.env["XDG_CACHE_HOME"]) / "amber").glob("*/catalog.sqlite"))
    assert len(found) == 1, found
    return found[0]


@pytest.fixture
def history_repo(cli: AmberCli, tmp_path: Path) -> tuple[AmberCli, Path]:
    src = tmp_path / "src"
    src.mkdir()
    _tree(src)
    cli.run("backup", str(src), "--host", "alpha")
    (src / "docs" / "report.odt").write_bytes(b"report v2, longer")
    (src / "notes.txt").unlink()
    cli.run("backup", str(src), "--host", "alpha")
    (src / "notes.txt").write_bytes(b"notes are back")
    cli.run("backup", str(src), "--host", "beta", "--tag", "other")
    return cli, src


QUERIES = [
    ["*.odt"],
    ["invoice*", "--ignore-case"],
    ["*"],
    ["*", "--type", "d"],
    ["*", "--size", "+1K"],
    ["*", "--size", "-10"],
    ["*.txt", "--host", "beta"],
    ["*/docs/*"],
    ["no*", "--newest-first", "--limit", "2"],
    ["*.odt", "--versions"],
    ["*", "--snapshot-since", "2000-01-01", "--snapshot-until", "2999-01-01"],
    ["*", "--newer", "2999-01-01"],
]


@pytest.mark.parametrize("args", QUERIES, ids=[" ".join(q) for q in QUERIES])
def test_catalog_and_tree_walk_give_the_same_answer(
    history_repo: tuple[AmberCli, Path], args: list[str]
) -> None:
    cli, _ = history_repo
    with_catalog = cli.run("find", *args, "--json")
    walked = cli.run("find", *args, "--json", "--no-catalog")
    assert with_catalog.stdout == walked.stdout
    assert "searching the trees instead" not in with_catalog.stderr
    assert cli.run("find", *args).stdout == cli.run("find", *args, "--no-catalog").stdout


def test_find_json_shape_and_hashes(history_repo: tuple[AmberCli, Path]) -> None:
    cli, src = history_repo
    lines = [json.loads(x) for x in cli.run("find", "Invoice_2026.pdf", "--json").stdout.splitlines()]
    assert len(lines) == 3  # in every snapshot
    want = hashlib.sha256((src / "docs" / "sub" / "Invoice_2026.pdf").read_bytes()).hexdigest()
    for doc in lines:
        assert set(doc) == {"snapshot", "time", "path", "type", "size", "mtime", "sha256"}
        assert doc["path"].endswith("/docs/sub/Invoice_2026.pdf") and doc["sha256"] == want
    versions = [
        json.loads(x) for x in cli.run("find", "report.odt", "--versions", "--json").stdout.splitlines()
    ]
    assert [len(v["snapshots"]) for v in versions] == [1, 2]
    assert versions[0]["first_seen"] <= versions[1]["first_seen"]


def test_history_shows_appear_change_disappear(history_repo: tuple[AmberCli, Path]) -> None:
    cli, src = history_repo
    for extra in ([], ["--no-catalog"]):
        events = [
            json.loads(x)
            for x in cli.run("history", str(src / "notes.txt"), "--json", *extra).stdout.splitlines()
        ]
        assert [e["event"] for e in events] == ["appeared", "disappeared", "appeared"]
        report = [
            json.loads(x)
            for x in cli.run("history", str(src / "docs/report.odt"), "--json", *extra).stdout.splitlines()
        ]
        assert [e["event"] for e in report] == ["appeared", "changed"]
        assert report[1]["sha256"] == hashlib.sha256(b"report v2, longer").hexdigest()
    missing = cli.run("history", "/no/such/file", check=False)
    assert missing.returncode == 2 and missing.stderr.startswith("amber: ")


@pytest.mark.parametrize("damage", ["truncate", "random", "foreign"])
def test_a_damaged_catalog_is_rebuilt_and_never_answers_wrongly(
    history_repo: tuple[AmberCli, Path], damage: str
) -> None:
    cli, _ = history_repo
    good = cli.run("find", "*", "--json").stdout
    path = _catalog_file(cli)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    if damage == "truncate":
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size // 2)
    elif damage == "random":
        path.write_bytes(os.urandom(path.stat().st_size))
    else:
        path.unlink()
        import sqlite3

        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE meta (key TEXT, value TEXT)")
        conn.execute("INSERT INTO meta VALUES ('schema', '999')")
        conn.commit()
        conn.close()
    again = cli.run("find", "*", "--json")
    assert again.stdout == good
    assert "rebuilding it" in again.stderr
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"


def test_catalog_follows_forget_and_other_writers(
    history_repo: tuple[AmberCli, Path], tmp_path: Path
) -> None:
    cli, src = history_repo
    cli.run("find", "*")  # builds the catalog
    first = json.loads(cli.run("snapshots", "--json").stdout)[0]["id"]
    cli.run("forget", first)
    assert first not in cli.run("find", "*", "--json").stdout
    # Another process writes a snapshot with the catalog off; the next search picks it up.
    (src / "late.txt").write_bytes(b"late")
    cli.run("backup", str(src), env={"AMBER_CATALOG": "off"})
    assert "late.txt" in cli.run("find", "late*").stdout
    status = json.loads(cli.run("catalog", "status", "--json").stdout)
    assert status["snapshots_covered"] == status["snapshots_in_repository"] == 3
    assert status["versions"] > 0 and status["bytes_on_disk"] > 0


def test_opt_out_builds_nothing(cli: AmberCli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _tree(src)
    cli.run("backup", str(src))
    off = {"AMBER_CATALOG": "off"}
    assert "notes.txt" in cli.run("find", "notes*", env=off).stdout
    assert not (Path(cli.env["XDG_CACHE_HOME"]) / "amber").exists() or not list(
        (Path(cli.env["XDG_CACHE_HOME"]) / "amber").glob("*/catalog.sqlite")
    )
    config = Path(cli.env["XDG_CONFIG_HOME"]) / "amber" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("[catalog]\nenabled = false\n")
    cli.run("find", "notes*")
    assert not list((Path(cli.env["XDG_CACHE_HOME"]) / "amber").glob("*/catalog.sqlite"))
    assert "off" in cli.run("catalog", "status").stdout


def test_rebuild_and_drop(history_repo: tuple[AmberCli, Path]) -> None:
    cli, _ = history_repo
    assert "3 snapshots indexed" in cli.run("catalog", "rebuild").stdout
    assert _catalog_file(cli).exists()
    assert cli.run("catalog", "drop").stdout.strip() == "catalog deleted"
    assert cli.run("catalog", "drop").stdout.strip() == "there was no catalog"


@pytest.mark.slow
def test_two_writers_and_a_searcher_at_once(cli: AmberCli, tmp_path: Path) -> None:
    """No "database is locked" reaches the user while two backups and searches overlap."""
    srcs = []
    for i in range(2):
        src = tmp_path / f"src{i}"
        (src / "d").mkdir(parents=True)
        for j in range(300):
            (src / "d" / f"file{i}_{j}.txt").write_bytes(os.urandom(64))
        srcs.append(src)
    cli.run("backup", str(srcs[0]))
    cli.run("find", "*")  # the catalog exists, so every command below keeps it in step
    procs = []
    for round_ in range(3):
        for i, src in enumerate(srcs):
            (src / "d" / f"new{round_}.txt").write_bytes(b"x")
            procs.append(cli.popen("backup", str(src), "--host", f"h{i}"))
        procs.append(cli.popen("find", "file1_*"))
        for p in procs:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err.decode()
            assert b"locked" not in err, err.decode()
        procs.clear()
    walked = cli.run("find", "*", "--json", "--no-catalog").stdout
    assert cli.run("find", "*", "--json").stdout == walked
