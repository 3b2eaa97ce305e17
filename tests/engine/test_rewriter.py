"""The tree rewriter: what an exclusion matches, and trees rewritten bottom-up on a real repository."""

from __future__ import annotations

import hashlib

import msgspec
import pytest

from amber.engine.rewriter import TreeRewriter, exclusion, path_excluded
from amber.errors import UsageError
from amber.repository import BlobType, Node, Repository, Tree


@pytest.mark.parametrize(
    ("patterns", "path", "expected"),
    [
        (["/home/a/secret.txt"], "/home/a/secret.txt", True),
        (["/home/a/secret.txt"], "/home/a/secret.txt.bak", False),
        (["/home/a"], "/home/a/deep/file", True),  # a matched directory covers its subtree
        (["/home/a"], "/home/ab", False),
        (["secret.txt"], "/x/y/secret.txt", True),  # no slash: any component
        (["*.pdf"], "/x/cv.pdf/inner", True),
        (["a/b"], "/x/a/b", True),  # relative with a slash: at any depth
        (["/home/*/cv.pdf"], "/home/bob/cv.pdf", True),
        (["/home/*/cv.pdf"], "/home/bob/sub/cv.pdf", False),
        (["/home/**/cv.pdf"], "/home/bob/sub/cv.pdf", True),
        ([], "/anything", False),
    ],
)
def test_path_excluded(patterns: list[str], path: str, expected: bool) -> None:
    assert path_excluded(patterns, path) is expected


def test_exclusion_needs_something() -> None:
    with pytest.raises(UsageError, match="nothing to leave out"):
        exclusion([], [])


def test_exclusion_by_content_hash_matches_files_only() -> None:
    digest = hashlib.sha256(b"x").digest()
    excluded = exclusion([], [digest])
    assert excluded(b"/a/any-name", Node(name=b"any-name", type="file", sha256=digest))
    assert not excluded(b"/a/other", Node(name=b"other", type="file", sha256=b"\0" * 32))
    assert not excluded(b"/a/d", Node(name=b"d", type="dir", sha256=digest))


def _file(repo: Repository, name: bytes, data: bytes) -> Node:
    blob_id = repo.key.blob_id(data)
    repo.blobs.save(BlobType.DATA, data, blob_id)
    digest = hashlib.sha256(data).digest()
    return Node(name=name, type="file", size=len(data), content=[blob_id], sha256=digest)


def _dir(repo: Repository, name: bytes, nodes: list[Node]) -> Node:
    tree_id, _ = repo.save_tree(Tree(sorted(nodes, key=lambda n: n.name)))
    return Node(name=name, type="dir", subtree=tree_id)


def test_rewrite_drops_matches_keeps_shared_subtrees_and_collects_what_went(repo: Repository) -> None:
    shared = _dir(repo, b"shared", [_file(repo, b"keep.txt", b"keep")])
    secret = _file(repo, b"secret.txt", b"secret bytes")
    inner = _dir(repo, b"inner", [_file(repo, b"x", b"x"), _file(repo, b"y", b"yy")])
    a = _dir(repo, b"a", [secret, shared, _file(repo, b"other", b"other")])
    b = _dir(repo, b"b", [msgspec.structs.replace(shared, name=b"shared"), inner])
    root, _ = repo.save_tree(Tree([a, b]))
    repo.blobs.flush()
    rw = TreeRewriter(repo, exclusion(["/a/secret.txt", "/b/inner"]))
    new_root, removed = rw.rewrite(root)
    repo.blobs.flush()
    assert new_root != root
    assert sorted((r.path, r.files, r.bytes, r.dirs) for r in removed) == [
        (b"/a/secret.txt", 1, 12, 0), (b"/b/inner", 2, 3, 1)]  # fmt: skip
    new_a, new_b = repo.load_tree(new_root).nodes
    assert [n.name for n in repo.load_tree(new_a.subtree).nodes] == [b"other", b"shared"]
    assert [n.name for n in repo.load_tree(new_b.subtree).nodes] == [b"shared"]
    assert repo.load_tree(new_b.subtree).nodes[0].subtree == shared.subtree  # untouched: same tree
    er = rw.erasable
    assert set(secret.content) <= er.blobs and inner.subtree in er.blobs
    assert {root, a.subtree, b.subtree} == er.replaced_trees  # the trees that named them, and ancestors
    assert shared.subtree not in er.all_blobs
    assert hashlib.sha256(b"secret bytes").digest() in er.sha256
    assert rw.rewrite(root) == (new_root, removed)  # remembered: the next snapshot costs nothing


def test_unchanged_tree_keeps_its_id_and_dry_run_writes_nothing(repo: Repository) -> None:
    root, _ = repo.save_tree(Tree([_file(repo, b"f", b"data")]))
    repo.blobs.flush()
    assert TreeRewriter(repo, exclusion(["nomatch"])).rewrite(root) == (root, [])
    before = len(repo.blobs.index)
    new_root, _ = TreeRewriter(repo, exclusion(["f"]), dry_run=True).rewrite(root)
    assert new_root != root and new_root not in repo.blobs.index and len(repo.blobs.index) == before


def test_a_tree_with_fields_this_version_does_not_know_is_refused(repo: Repository) -> None:
    raw = msgspec.msgpack.encode({"nodes": [
        {"name": b"f", "type": "file", "future_field": 1}, {"name": b"g", "type": "file"}]})  # fmt: skip
    tree_id = repo.key.blob_id(raw)
    repo.blobs.save(BlobType.TREE, raw, tree_id)
    repo.blobs.flush()
    with pytest.raises(UsageError, match="future_field"):
        TreeRewriter(repo, exclusion(["/g"])).rewrite(tree_id)
