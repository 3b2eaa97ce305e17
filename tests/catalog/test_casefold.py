"""What --ignore-case means: names and patterns compared after Unicode full case folding.

Both search paths (catalog and tree walk) apply FindQuery.matches; the catalog's
candidate SQL must never drop a name the rule accepts (checked against a real catalog).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from amber.catalog import store
from amber.catalog.ingest import sync
from amber.catalog.query import FindQuery, ordered
from amber.catalog.search import catalog_hits, walk_hits
from amber.repository import Node, Snapshot, Tree, init_repository, open_repository
from amber.storage import open_backend

PASSWORD = b"casefold"


@pytest.mark.parametrize(
    ("pattern", "name", "ignore_case", "expected"),
    [
        ("Ä*", "äpfel", True, True),
        ("ä*", "ÄPFEL", True, True),
        ("Ä*", "äpfel", False, False),
        ("STRASSE", "straße", True, True),  # ß folds to ss
        ("straße", "STRASSE", True, True),
        ("STRASSE", "straße", False, False),
        ("*ss*", "Straße", False, False),  # without -i, bytes are compared
        ("strasse", "straẞe", True, True),  # capital sharp s
        ("*.TXT", "a.txt", True, True),
        ("*.TXT", "a.txt", False, False),
        ("ﬁle", "FILE", True, True),  # the fi ligature folds to "fi"
        ("σ*", "Σίσυφος", True, True),
        ("k*", "\u212aelvin", True, True),  # the Kelvin sign folds to k
        ("?", "ß", True, False),  # folding first: "ss" is two characters
    ],
)
def test_ignore_case_folds_unicode(pattern: str, name: str, ignore_case: bool, expected: bool) -> None:
    query = FindQuery(patterns=(pattern,), ignore_case=ignore_case)
    assert query.name_matches(b"/home/" + name.encode()) is expected


def test_names_that_are_not_utf8_only_match_themselves() -> None:
    query = FindQuery(patterns=("raw\udcff*",), ignore_case=True)  # the CLI's surrogate escape for 0xff
    assert query.name_matches(b"/x/RAW\xff.bin")
    assert not query.name_matches(b"/x/raw\xfe.bin")


NAMES = ["Straße.txt", "STRASSE.md", "äpfel", "ÄPFEL.csv", "\u212aelvin.log", "ﬁle.txt", "plain.TXT",
         "Σίσυφος", "x"]  # fmt: skip


@pytest.mark.parametrize(
    "patterns",
    [("*strasse*",), ("äpfel*",), ("*.txt",), ("k*",), ("FI*",), ("?",), ("σ*",), ("*SS*",), ("*.CSV",)],
)
@pytest.mark.parametrize("ignore_case", [True, False])
def test_catalog_and_walk_agree_on_folded_names(
    tmp_path: Path, patterns: tuple[str, ...], ignore_case: bool
) -> None:
    init_repository(open_backend(str(tmp_path / "repo")), PASSWORD).close()
    repo = open_repository(open_backend(str(tmp_path / "repo")), PASSWORD)
    try:
        nodes = [Node(name=n.encode(), type="file", mode=0o644, size=1, mtime_ns=1, sha256=b"\1" * 32)
                 for n in sorted(NAMES, key=str.encode)]  # fmt: skip
        home, _ = repo.save_tree(Tree(nodes=nodes))
        root, _ = repo.save_tree(Tree(nodes=[Node(name=b"home", type="dir", mode=0o755, subtree=home)]))
        repo.blobs.flush()
        repo.save_snapshot(
            Snapshot(time="2026-01-01T00:00:00+00:00", tree=root, paths=["/home"], hostname="h")
        )
        conn, _ = store.open_catalog(repo.id, tmp_path / "c.sqlite")
        try:
            sync(conn, repo)
            query = FindQuery(patterns=patterns, ignore_case=ignore_case)
            from_catalog = [h.path for h in ordered(catalog_hits(conn, query))]
            from_walk = [h.path for h in ordered(walk_hits(repo, query))]
        finally:
            conn.close()
    finally:
        repo.close()
    assert from_catalog == from_walk
    if ignore_case and patterns in KNOWN:
        assert sorted(from_walk) == sorted(b"/home/" + n.encode() for n in KNOWN[patterns])


KNOWN = {
    ("*strasse*",): ["Straße.txt", "STRASSE.md"],
    ("k*",): ["\u212aelvin.log"],
    ("FI*",): ["ﬁle.txt"],
    ("*.txt",): ["Straße.txt", "ﬁle.txt", "plain.TXT"],
    ("äpfel*",): ["äpfel", "ÄPFEL.csv"],
}
