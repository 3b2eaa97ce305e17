"""A tree with its nodes left encoded, for comparing two versions of a directory.

Most entries of a directory that changed are the same in both versions, byte for
byte. :func:`decode_raw_tree` validates a tree blob like :func:`decode_tree` (size,
node count, names valid, unique and sorted) but keeps each node as its encoded
bytes; only the nodes that differ need :func:`decode_node`. Identical bytes mean an
identical node; different bytes may still decode to equal nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from amber.errors import InvalidTree
from amber.repository.model import MAX_TREE_NODES, Node, check_tree_outline, validate_names


class _Named(msgspec.Struct, gc=False):
    name: bytes


class _Names(msgspec.Struct):
    nodes: list[_Named] = []


class _Encoded(msgspec.Struct):
    nodes: list[msgspec.Raw] = []


_names_decoder = msgspec.msgpack.Decoder(_Names)
_encoded_decoder = msgspec.msgpack.Decoder(_Encoded)
_node_decoder = msgspec.msgpack.Decoder(Node)


@dataclass(frozen=True)
class RawTree:
    names: list[bytes]  # in order, validated
    encoded: list[bytes]  # each node's encoding, in the same order

    def __len__(self) -> int:
        return len(self.names)


def decode_raw_tree(data: bytes, tree_id: bytes = b"") -> RawTree:
    label = f"tree {tree_id.hex()[:16]}" if tree_id else "tree"
    try:
        if len(data) > MAX_TREE_NODES:  # a smaller blob cannot hold more nodes than that
            check_tree_outline(data, tree_id)
        names = [n.name for n in _names_decoder.decode(data).nodes]
        nodes = [bytes(raw) for raw in _encoded_decoder.decode(data).nodes]
    except (msgspec.DecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        raise InvalidTree(f"{label} is malformed: {exc}") from exc
    validate_names(names, tree_id)
    return RawTree(names, nodes)


def decode_node(raw: bytes, tree_id: bytes = b"") -> Node:
    try:
        return _node_decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError) as exc:
        label = f"tree {tree_id.hex()[:16]}" if tree_id else "tree"
        raise InvalidTree(f"{label} is malformed: {exc}") from exc
