"""Raw trees (repository/rawtree.py): validated like decode_tree, nodes left encoded."""

from __future__ import annotations

import itertools

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amber.errors import InvalidName, InvalidTree
from amber.repository.model import MAX_TREE_NODES, Node, Tree, decode_tree, encode_tree
from amber.repository.rawtree import decode_node, decode_raw_tree

PROPS = settings(deadline=None, derandomize=True, max_examples=200)

_names = st.binary(min_size=1, max_size=3).filter(
    lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b"..")
)
_nodes = st.builds(
    Node, name=_names, type=st.sampled_from(["file", "dir", "symlink"]), mode=st.integers(0, 0o7777),
    mtime_ns=st.integers(0, 2**62), size=st.integers(0, 2**40), sha256=st.binary(max_size=32),
    subtree=st.binary(max_size=32), xattrs=st.lists(st.tuples(st.binary(max_size=4), st.binary(max_size=4)),
                                                   max_size=2),
)  # fmt: skip


def _encoded(names: list[bytes]) -> bytes:
    return msgspec.msgpack.encode({"nodes": [{"name": n, "type": "file"} for n in names]})


@PROPS
@given(st.lists(_nodes, max_size=8, unique_by=lambda n: n.name))
def test_each_encoded_node_decodes_to_the_tree_s_node(nodes: list[Node]) -> None:
    data = encode_tree(Tree(nodes=sorted(nodes, key=lambda n: n.name)))
    tree, raw = decode_tree(data), decode_raw_tree(data)
    assert raw.names == [n.name for n in tree.nodes] and len(raw) == len(tree.nodes)
    assert [decode_node(e) for e in raw.encoded] == tree.nodes


@PROPS
@given(st.lists(_names, max_size=6))
def test_names_are_refused_exactly_as_decode_tree_refuses_them(names: list[bytes]) -> None:
    data = _encoded(names)
    if all(a < b for a, b in itertools.pairwise(names)):
        assert decode_raw_tree(data).names == names
    else:
        with pytest.raises(InvalidTree) as raw_error:
            decode_raw_tree(data)
        with pytest.raises(InvalidTree) as tree_error:
            decode_tree(data)
        assert str(raw_error.value) == str(tree_error.value)


@pytest.mark.parametrize(
    ("names", "error"),
    [
        ([b".."], InvalidName),
        ([b"a/b"], InvalidName),
        ([b"a", b"a"], InvalidTree),
        ([b"b", b"a"], InvalidTree),
    ],
)
def test_bad_names_are_refused(names: list[bytes], error: type[Exception]) -> None:
    with pytest.raises(error):
        decode_raw_tree(_encoded(names), b"\x01" * 32)


@pytest.mark.parametrize(
    "data",
    [b"", b"\xc1", b"\x81\xa5nodes\x01", _encoded([b"a"])[:-1],
     msgspec.msgpack.encode({"nodes": [{"type": "x"}]}), msgspec.msgpack.encode({"nodes": [7]})],
)  # fmt: skip
def test_malformed_trees_are_invalid_not_crashes(data: bytes) -> None:
    with pytest.raises(InvalidTree):
        decode_raw_tree(data, b"\x01" * 32)


def test_a_node_that_is_not_one_is_invalid() -> None:
    with pytest.raises(InvalidTree, match="malformed"):
        decode_node(msgspec.msgpack.encode({"name": b"a"}))  # no type


def test_node_count_is_refused_before_nodes_are_decoded() -> None:
    node = b"\x82\xa4name\xc4\x01a\xa4type\xa4file"
    data = b"\x81\xa5nodes\xdd" + (MAX_TREE_NODES + 1).to_bytes(4, "big") + node * (MAX_TREE_NODES + 1)
    with pytest.raises(InvalidTree, match=f"more than {MAX_TREE_NODES}"):
        decode_raw_tree(data)
