"""Snapshot and tree structures and their serialization. Pure, no I/O.

Trees and snapshots are msgpack maps (unknown keys are ignored by readers,
defaults are omitted by writers), so fields can be added without a format bump.
Names, symlink targets and xattr names are raw bytes: non-UTF-8 names survive.
"""

from __future__ import annotations

import datetime as dt
import operator

import msgspec

from amber.errors import IntegrityError, InvalidName, InvalidTree, TreeTooLarge
from amber.repository.limits import MAX_TREE_BYTES

NODE_TYPES = ("file", "dir", "symlink", "fifo", "chardev", "blockdev")

# Limits every reader enforces and every writer respects (design §9). A tree of
# MAX_TREE_BYTES (256 MiB, repository/limits.py: the bound on tree blobs) holds ~1M
# fully described files, or one file of ~9 TiB (34 bytes of content ID per ~1.25 MiB chunk).
MAX_TREE_NODES = 1_000_000
# Linux PATH_MAX (4096) less its NUL: the archiver cannot read a longer path, so
# no snapshot it writes holds one; nor one deeper than such a path can be.
MAX_PATH = 4095
MAX_TREE_DEPTH = 2048
_FORBIDDEN_NAMES = frozenset((b"", b".", b".."))


# gc=False: nodes never form reference cycles, and a walk holds ~100k of them;
# tracking them made the cyclic GC a tenth of an unchanged re-backup.
class Node(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=False, gc=False):
    name: bytes
    type: str
    mode: int = 0  # permission bits incl. setuid/setgid/sticky (st_mode & 0o7777)
    uid: int = 0
    gid: int = 0
    user: str = ""
    group: str = ""
    mtime_ns: int = 0
    atime_ns: int = 0
    ctime_ns: int = 0
    size: int = 0
    inode: int = 0
    device: int = 0  # st_dev, to pair hardlinks
    links: int = 1
    rdev: int = 0  # for character and block devices
    link_target: bytes = b""
    xattrs: list[tuple[bytes, bytes]] = []  # POSIX ACLs are system.posix_acl_* here
    content: list[bytes] = []  # data blob IDs, in order
    sha256: bytes = b""  # of the whole file
    subtree: bytes = b""  # tree blob ID for directories
    damaged: bool = False  # set by repair when content is missing
    entropy: int = 0  # files: 1 + 32 * bits/byte of the first chunk's first 4 KiB; 0 = not measured


class Tree(msgspec.Struct, omit_defaults=True):
    nodes: list[Node] = []


class Anomaly(msgspec.Struct, omit_defaults=True):
    """The ransomware check's decision and evidence for one snapshot (design §10)."""

    verdict: str = "clean"  # "clean" or "suspicious"
    reasons: list[str] = []
    counts: dict[str, int] = {}
    top_dirs: list[str] = []  # "path (count)", most affected first
    examples: list[str] = []
    new_extensions: list[str] = []


class Summary(msgspec.Struct, omit_defaults=True):
    files_new: int = 0
    files_changed: int = 0
    files_unmodified: int = 0
    dirs: int = 0
    total_files: int = 0
    total_bytes: int = 0
    data_blobs_added: int = 0
    tree_blobs_added: int = 0
    data_added: int = 0  # plaintext bytes of new blobs
    data_added_stored: int = 0  # bytes written to packs
    duration_s: float = 0.0
    anomaly: Anomaly | None = None  # absent: not assessed (no parent, or an older amber)


class Snapshot(msgspec.Struct, omit_defaults=True):
    time: str  # RFC 3339 with nanoseconds, UTC offset included
    tree: bytes
    paths: list[str]
    hostname: str
    username: str = ""
    uid: int = 0
    gid: int = 0
    tags: list[str] = []
    parent: str = ""
    excludes: list[str] = []
    program_version: str = ""
    partial: bool = False
    skipped: list[str] = []
    changed_during_read: list[str] = []
    summary: Summary = msgspec.field(default_factory=Summary)
    # ID of the snapshot this one is a copy (or rewrite) of, kept across chains of
    # copies, so copy skips snapshots the destination already holds.
    original: str | None = None

    @property
    def datetime(self) -> dt.datetime:
        return parse_time(self.time)


class _Outline(msgspec.Struct):
    """A tree with its nodes left encoded: their count is read before they are decoded."""

    nodes: msgspec.Raw = msgspec.Raw(b"\x90")


_tree_encoder = msgspec.msgpack.Encoder()
_tree_decoder = msgspec.msgpack.Decoder(Tree)
_outline_decoder = msgspec.msgpack.Decoder(_Outline)
_snapshot_decoder = msgspec.msgpack.Decoder(Snapshot)


def show_name(name: bytes) -> str:
    """A name for a one-line message: quoted, control characters and non-UTF-8 bytes escaped."""
    return repr(name)[1:]


def validate_name(name: bytes) -> None:
    """Raise InvalidName unless ``name`` is safe as one path component.

    Non-empty, not ``.`` or ``..``, no ``/`` and no NUL. Pure; the restorer and
    every reader of trees call it (decode_tree checks whole trees at once).
    """
    if not isinstance(name, bytes):
        raise InvalidName(f"name {name!r} is not bytes")
    if name in _FORBIDDEN_NAMES:
        raise InvalidName("empty name" if not name else f"name {show_name(name)} is not allowed")
    if b"/" in name:
        raise InvalidName(f"name {show_name(name)} contains '/'")
    if b"\0" in name:
        raise InvalidName(f"name {show_name(name)} contains NUL")


def _label(tree_id: bytes) -> str:
    return f"tree {tree_id.hex()[:16]}" if tree_id else "tree"


def validate_tree(tree: Tree, tree_id: bytes = b"") -> None:
    """Raise InvalidTree unless names are valid, unique and sorted as bytes, within the node limit."""
    validate_names([n.name for n in tree.nodes], tree_id)


def validate_names(names: list[bytes], tree_id: bytes = b"") -> None:
    """:func:`validate_tree` given the tree's names in order."""
    if len(names) > MAX_TREE_NODES:
        raise InvalidTree(f"{_label(tree_id)}: {len(names)} entries, more than {MAX_TREE_NODES}")
    joined = b"".join(names)  # fast path: bytes only, no / or NUL anywhere, then order
    if b"/" in joined or b"\0" in joined or not _FORBIDDEN_NAMES.isdisjoint(names):
        for i, name in enumerate(names):
            try:
                validate_name(name)
            except InvalidName as exc:
                raise InvalidName(f"{_label(tree_id)}: entry {i}: {exc}") from None
    if not all(map(operator.lt, names, names[1:])):
        i = next(i for i in range(1, len(names)) if not names[i - 1] < names[i])
        what = "duplicate" if names[i - 1] == names[i] else "out of order"
        raise InvalidTree(f"{_label(tree_id)}: entry {i}: name {show_name(names[i])} is {what}")


def encode_tree(tree: Tree) -> bytes:
    """The tree's bytes; refuses a tree that readers would reject (design §9)."""
    if len(tree.nodes) > MAX_TREE_NODES:
        raise TreeTooLarge(f"a directory has {len(tree.nodes)} entries; at most {MAX_TREE_NODES} are allowed")
    validate_tree(tree)
    data = _tree_encoder.encode(tree)
    if len(data) > MAX_TREE_BYTES:
        raise TreeTooLarge(
            f"a directory's tree would take {len(data)} bytes; at most {MAX_TREE_BYTES} are allowed"
        )
    return data


def _array_length(raw: bytes) -> int:
    """Element count from a msgpack array header; -1 when it is not an array."""
    head = raw[:1]
    if not head:
        return -1
    first = head[0]
    if 0x90 <= first <= 0x9F:
        return first & 0x0F
    if first == 0xDC and len(raw) >= 3:
        return int.from_bytes(raw[1:3], "big")
    if first == 0xDD and len(raw) >= 5:
        return int.from_bytes(raw[1:5], "big")
    return -1


def decode_tree(data: bytes, tree_id: bytes = b"") -> Tree:
    """Decode and validate a tree blob; InvalidTree (an IntegrityError) names what is wrong.

    Size and node count are checked before any node is decoded.
    """
    label = _label(tree_id)
    try:
        check_tree_outline(data, tree_id)
        tree = _tree_decoder.decode(data)
    except (msgspec.DecodeError, RecursionError) as exc:  # RecursionError: a value nested too deep
        raise InvalidTree(f"{label} is malformed: {exc}") from exc
    validate_tree(tree, tree_id)
    return tree


def check_tree_outline(data: bytes, tree_id: bytes = b"") -> None:
    """Raise InvalidTree when a tree blob is too large or holds too many nodes, before any
    node is decoded (msgspec.DecodeError when it is not a tree at all; RecursionError when
    a value nests too deep)."""
    label = _label(tree_id)
    if len(data) > MAX_TREE_BYTES:
        raise InvalidTree(f"{label}: {len(data)} bytes, more than {MAX_TREE_BYTES}")
    count = _array_length(memoryview(_outline_decoder.decode(data).nodes)[:5].tobytes())
    if count > MAX_TREE_NODES:
        raise InvalidTree(f"{label}: {count} entries, more than {MAX_TREE_NODES}")


def encode_snapshot(snapshot: Snapshot) -> bytes:
    return _tree_encoder.encode(snapshot)


def decode_snapshot(data: bytes) -> Snapshot:
    try:
        return _snapshot_decoder.decode(data)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise IntegrityError(f"malformed snapshot: {exc}") from exc


def format_time(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.isoformat(timespec="microseconds")


def parse_time(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"not an ISO 8601 time: {text!r}") from exc
    return moment if moment.tzinfo else moment.astimezone()
