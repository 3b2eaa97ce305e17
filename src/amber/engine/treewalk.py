"""Walking snapshot trees: iterative, paths as bytes, bounded whatever the trees hold.

Trees form a DAG: a subtree ID can appear under many paths. In a snapshot
amber writes that happens for empty directories and bind mounts, but a crafted
graph of 41 trees can have 2^40 paths, and a crafted chain can be 30,000 levels
deep. So a walk (design §9):

* lists each distinct tree in full the first time it meets it;
* lists later occurrences of a tree it has already listed only while they add
  at most ``REPEAT_FLOOR`` entries plus as many as the distinct trees held so
  far; after that, repeats are skipped with one error;
* stops at ``MAX_TREE_DEPTH`` levels and ``MAX_PATH`` bytes of path, with one
  error per directory where it stops;
* reports a tree that cannot be read once, at the first path that reaches it;
* with a node predicate (``find``), remembers subtrees that hold no match and
  does not enter them again, in this walk or the next one given the same set.

Memory is linear in the depth (one path and one node list per level) plus one
ID per distinct tree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableSet

from amber.errors import AmberError, InvalidTree, NotFound
from amber.repository import Node, Tree
from amber.repository.model import MAX_PATH, MAX_TREE_DEPTH, show_name

TreeLoader = Callable[[bytes], Tree]
ErrorSink = Callable[[bytes, AmberError], None]  # (directory path, error); its subtree is skipped
NodeMatch = Callable[[bytes, Node], bool]

REPEAT_FLOOR = 100_000


class _Frame:
    __slots__ = ("base", "complete", "depth", "found", "nodes", "reported", "tree_id")

    def __init__(self, base: bytes, tree_id: bytes, nodes: list[Node], depth: int) -> None:
        self.base = base
        self.tree_id = tree_id
        self.nodes = iter(nodes)
        self.depth = depth
        self.found = False  # a match was yielded below (find's memo)
        self.complete = True  # nothing below was skipped
        self.reported = False  # reported a limit reached in this directory already


class Walker:
    """One walk's budget and its error sink; ``diff`` shares one across its sub-walks."""

    def __init__(self, load_tree: TreeLoader, on_error: ErrorSink | None) -> None:
        self._load_tree = load_tree
        self._on_error = on_error
        self._seen: set[bytes] = set()
        self._bad: set[bytes] = set()  # unreadable: reported once, at the first path
        self._budget = REPEAT_FLOOR
        self._budget_reported = False

    def fail(self, path: bytes, exc: AmberError) -> None:
        if self._on_error is None:
            raise exc
        self._on_error(path, exc)

    def nodes(self, path: bytes, tree_id: bytes) -> list[Node] | None:
        """The tree's nodes, or None (reported) when it is unreadable or over the repeat budget."""
        repeat = tree_id in self._seen
        if (repeat and self._budget_reported) or tree_id in self._bad:
            return None  # skipped, as its one error said
        try:
            nodes = self._load_tree(tree_id).nodes
        except AmberError as exc:
            self._bad.add(tree_id)
            self.fail(path, exc)
            return None
        if not repeat:
            self._seen.add(tree_id)
            self._budget += len(nodes)
        elif len(nodes) > self._budget:
            self._budget = 0
            self._over_budget(path, tree_id)
            return None
        else:
            self._budget -= len(nodes)
        return nodes

    def _over_budget(self, path: bytes, tree_id: bytes) -> None:
        if not self._budget_reported:
            self._budget_reported = True
            self.fail(path, InvalidTree(
                f"tree {tree_id.hex()[:16]} and others repeat under more paths than a walk lists "
                f"({REPEAT_FLOOR} entries beyond the distinct trees); further repeats are skipped"
            ))  # fmt: skip

    def walk(
        self, tree_id: bytes, prefix: bytes = b"", match: NodeMatch | None = None,
        no_match: MutableSet[bytes] | None = None,
    ) -> Iterator[tuple[bytes, Node]]:  # fmt: skip
        """See :func:`walk`."""
        return _walk(self, tree_id, prefix, match, no_match)


def walk(
    load_tree: TreeLoader, tree_id: bytes, prefix: bytes = b"", on_error: ErrorSink | None = None,
    match: NodeMatch | None = None, no_match: MutableSet[bytes] | None = None,
) -> Iterator[tuple[bytes, Node]]:  # fmt: skip
    """Yield (path, node) depth-first, parents before children, names sorted.

    A tree that cannot be read, or a limit reached, goes to ``on_error`` and
    the walk goes on without that subtree; without ``on_error`` it is raised.
    With ``match``, only matching nodes are yielded; ``no_match`` (when the
    predicate ignores the path) collects and skips trees without a match.
    """
    return _walk(Walker(load_tree, on_error), tree_id, prefix, match, no_match)


def _walk(
    state: Walker, tree_id: bytes, prefix: bytes, match: NodeMatch | None,
    no_match: MutableSet[bytes] | None,
) -> Iterator[tuple[bytes, Node]]:  # fmt: skip
    root = state.nodes(prefix or b"/", tree_id)
    if root is None:
        return
    stack = [_Frame(prefix, tree_id, root, 0)]
    while stack:
        frame = stack[-1]
        node = next(frame.nodes, None)
        if node is None:
            stack.pop()
            if no_match is not None and frame.complete and not frame.found:
                no_match.add(frame.tree_id)
            if stack:
                stack[-1].found |= frame.found
                stack[-1].complete &= frame.complete
            continue
        path = frame.base + b"/" + node.name
        if len(path) > MAX_PATH:
            frame.complete = False
            if not frame.reported:
                frame.reported = True
                state.fail(frame.base or b"/", InvalidTree(
                    f"entry {show_name(node.name[:64])} and any like it: path longer than {MAX_PATH} bytes"
                ))  # fmt: skip
            continue
        if match is None or match(path, node):
            frame.found = True
            yield path, node
        if node.type != "dir" or not node.subtree:
            continue
        if no_match is not None and node.subtree in no_match:
            continue
        if frame.depth >= MAX_TREE_DEPTH:
            frame.complete = False
            if not frame.reported:
                frame.reported = True
                state.fail(path, InvalidTree(f"deeper than {MAX_TREE_DEPTH} levels; not entered"))
            continue
        nodes = state.nodes(path, node.subtree)
        if nodes is None:
            frame.complete = False
            continue
        stack.append(_Frame(path, node.subtree, nodes, frame.depth + 1))


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
