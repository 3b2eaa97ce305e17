"""Pure parts of catalog ingest: the extension of a name, and the trees one sync keeps."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amber.catalog.treecache import TreeCache
from amber.catalog.versions import extension
from amber.repository.rawtree import RawTree


def _splitext_extension(raw: bytes) -> str:
    """The rule extension() follows, as os.path.splitext states it."""
    stem, ext = os.path.splitext(raw)
    if not stem or not ext:
        return ""
    return ext[1:].decode("utf-8", "backslashreplace").casefold()


@pytest.mark.parametrize(("raw", "ext"), [
    (b"a.txt", "txt"), (b"A.TXT", "txt"), (b"x.tar.gz", "gz"), (b".bashrc", ""), (b"..a", ""),
    (b"...", ""), (b"a.", ""), (b"a..b", "b"), (b"noext", ""), (b".a.b", "b"),
    ("Äpfel.ÖDT".encode(), "ödt"), (b"raw.\xff", "\\xff"), (b"x.STRASSE", "strasse"),
])  # fmt: skip
def test_extension(raw: bytes, ext: str) -> None:
    assert extension(raw) == ext == _splitext_extension(raw)


names = st.binary(max_size=10).map(lambda b: b.replace(b"/", b".")) | st.text(
    alphabet=".aAÄẞß", max_size=8
).map(str.encode)


@given(names)
def test_extension_splits_as_splitext(raw: bytes) -> None:
    assert extension(raw) == _splitext_extension(raw)


def _tree(size: int) -> RawTree:
    return RawTree([b"n"], [b"x" * size])


def test_the_tree_cache_reads_each_tree_once_and_forgets_the_least_recent() -> None:
    reads: list[bytes] = []

    def read(tree_id: bytes) -> RawTree:
        reads.append(tree_id)
        return _tree(100)

    cache = TreeCache(read, budget=3 * 164)  # three trees of 100 bytes (+64 a node)
    for tree_id in (b"a", b"b", b"a", b"c", b"a", b"d"):  # d pushes out b, the least recent
        cache(tree_id)
    assert reads == [b"a", b"b", b"c", b"d"]
    cache(b"a"), cache(b"b")
    assert reads == [b"a", b"b", b"c", b"d", b"b"]


def test_a_tree_larger_than_the_budget_is_not_kept() -> None:
    reads: list[bytes] = []

    def read(tree_id: bytes) -> RawTree:
        reads.append(tree_id)
        return _tree(1000)

    cache = TreeCache(read, budget=500)
    cache(b"big"), cache(b"big")
    assert reads == [b"big", b"big"]
