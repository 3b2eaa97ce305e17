"""The tree rules of design §9 as pure functions: names, their order, and the limits."""

from __future__ import annotations

import itertools
import os.path
import tracemalloc

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amber.errors import InvalidName, InvalidTree
from amber.repository.model import MAX_TREE_NODES, decode_tree, validate_name

PROPS = settings(deadline=None, derandomize=True, max_examples=300)


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        (b"a", True), (b"...", True), (b".a", True), (b"a.", True), (b"..a", True),
        (b"\xff\xfe", True), (b"with space", True), (b"tab\there", True), (b"new\nline", True),
        (b"\\", True), (b"esc\x1b[31m", True), (b"x" * 255, True), (b"-rf", True),
        (b"", False), (b".", False), (b"..", False), (b"/", False), (b"a/", False),
        (b"/a", False), (b"../x", False), (b"a/b", False), (b"\0", False), (b"a\0", False),
        (b"..\0", False),
    ],
)  # fmt: skip
def test_validate_name(name: bytes, ok: bool) -> None:
    if ok:
        validate_name(name)
    else:
        with pytest.raises(InvalidName):
            validate_name(name)


def test_validate_name_rejects_text() -> None:
    with pytest.raises(InvalidName):
        validate_name("a")  # type: ignore[arg-type]


def _stays_one_level_down(name: bytes) -> bool:
    """What the rule is for: joined to a directory, the name is one entry right inside it."""
    joined = os.path.join(b"/target", name)
    return b"\0" not in name and os.path.normpath(joined) == joined and os.path.dirname(joined) == b"/target"


_tricky = st.lists(st.sampled_from([b".", b"/", b"\0", b"a"]), max_size=4).map(b"".join)


@PROPS
@given(st.one_of(st.binary(max_size=8), _tricky))
def test_valid_names_are_exactly_those_that_stay_inside(name: bytes) -> None:
    try:
        validate_name(name)
        valid = True
    except InvalidName:
        valid = False
    assert valid == _stays_one_level_down(name)


def _raw(names: list[bytes]) -> bytes:
    return msgspec.msgpack.encode({"nodes": [{"name": n, "type": "file"} for n in names]})


_names = st.binary(min_size=1, max_size=3).filter(
    lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b"..")
)


@PROPS
@given(st.lists(_names, max_size=6))
def test_a_tree_decodes_only_with_unique_names_in_byte_order(names: list[bytes]) -> None:
    in_order = all(a < b for a, b in itertools.pairwise(names))
    if in_order:
        assert [n.name for n in decode_tree(_raw(names)).nodes] == names
    else:
        with pytest.raises(InvalidTree, match=r"duplicate|out of order"):
            decode_tree(_raw(names))


def test_node_count_is_refused_before_nodes_are_decoded() -> None:
    node = b"\x82\xa4name\xc4\x01a\xa4type\xa4file"  # {"name": b"a", "type": "file"}
    data = b"\x81\xa5nodes\xdd" + (MAX_TREE_NODES + 1).to_bytes(4, "big") + node * (MAX_TREE_NODES + 1)
    tracemalloc.start()
    try:
        with pytest.raises(InvalidTree, match=f"{MAX_TREE_NODES + 1} entries, more than {MAX_TREE_NODES}"):
            decode_tree(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # a million decoded nodes would take hundreds of MB


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        b"\x81\xa5nodes\x01",
        _raw([b"a"])[:-1],
        msgspec.msgpack.encode({"nodes": [{"type": "file"}]}),
    ],
)
def test_malformed_trees_are_invalid_not_crashes(data: bytes) -> None:
    with pytest.raises(InvalidTree):
        decode_tree(data, b"\x01" * 32)
