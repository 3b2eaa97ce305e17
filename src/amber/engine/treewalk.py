"""Walking snapshot trees: iterative, paths as bytes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from amber.errors import NotFound
from amber.repository import Node, Tree

TreeLoader = Callable[[bytes], Tree]


def walk(load_tree: TreeLoader, tree_id: bytes, prefix: bytes = b"") -> Iterator[tuple[bytes, Node]]:
    """Yield (path, node) depth-first, parents before children, names sorted."""
    stack: list[tuple[bytes, Iterator[Node]]] = [(prefix, iter(load_tree(tree_id).nodes))]
    while stack:
        base, nodes = stack[-1]
        node = next(nodes, None)
        if node is None:
            stack.pop()
            continue
        path = base + b"/" + node.name
        yield path, node
        if node.type == "dir" and node.subtree:
            stack.append((path, iter(load_tree(node.subtree).nodes)))


def split_path(path: bytes) -> list[bytes]:
    return [p for p in path.split(b"/") if p and p != b"."]


def lookup(load_tree: TreeLoader, root: bytes, path: bytes) -> tuple[Node | None, bytes]:
    """Find ``path`` under the root tree. Returns (node, tree id of a directory or b"").

    The root itself yields (None, root).
    """
    tree_id = root
    node: Node | None = None
    for part in split_path(path):
        if not tree_id:
            raise NotFound(f"path {path.decode(errors='replace')!r} not found in snapshot")
        found = next((n for n in load_tree(tree_id).nodes if n.name == part), None)
        if found is None:
            raise NotFound(f"path {path.decode(errors='replace')!r} not found in snapshot")
        node = found
        tree_id = found.subtree if found.type == "dir" else b""
    return node, tree_id
