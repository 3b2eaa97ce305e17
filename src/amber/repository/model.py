"""Snapshot and tree structures and their serialization. Pure, no I/O.

Trees and snapshots are msgpack maps (unknown keys are ignored by readers,
defaults are omitted by writers), so fields can be added without a format bump.
Names, symlink targets and xattr names are raw bytes: non-UTF-8 names survive.
"""

from __future__ import annotations

import datetime as dt

import msgspec

from amber.errors import IntegrityError

NODE_TYPES = ("file", "dir", "symlink", "fifo", "chardev", "blockdev")


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


class Tree(msgspec.Struct, omit_defaults=True):
    nodes: list[Node] = []


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


_tree_encoder = msgspec.msgpack.Encoder()
_tree_decoder = msgspec.msgpack.Decoder(Tree)
_snapshot_decoder = msgspec.msgpack.Decoder(Snapshot)


def encode_tree(tree: Tree) -> bytes:
    return _tree_encoder.encode(tree)


def decode_tree(data: bytes) -> Tree:
    try:
        return _tree_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise IntegrityError(f"malformed tree: {exc}") from exc


def encode_snapshot(snapshot: Snapshot) -> bytes:
    return _tree_encoder.encode(snapshot)


def decode_snapshot(data: bytes) -> Snapshot:
    try:
        return _snapshot_decoder.decode(data)
    except msgspec.DecodeError as exc:
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
