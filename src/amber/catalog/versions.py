"""What a file *version* is, and the lineages snapshots belong to. Pure, no I/O.

A version is a path whose content and metadata stay the same from one snapshot to the
next. Directories are versioned on their own metadata only: a change inside a
directory is a new version of that file, not of every directory above it.
"""

from __future__ import annotations

import datetime as dt
import json

from amber.repository import Node, Snapshot

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_OFFSET = 10**18  # keeps times before 1970 sorting correctly as fixed-width text
KIND_LETTER = {"file": "f", "dir": "d", "symlink": "l", "fifo": "p", "chardev": "c", "blockdev": "b"}
# The catalog stores a node type as a small integer (0 and 1 take no bytes in a SQLite record).
KIND_CODE = {"file": 0, "dir": 1, "symlink": 2, "fifo": 3, "chardev": 4, "blockdev": 5}
KIND_NAME = {code: kind for kind, code in KIND_CODE.items()}


def kind_code(kind: str) -> int | str:
    """A node type as stored; a type amber does not know (a crafted tree) is kept as text."""
    return KIND_CODE.get(kind, kind)


def kind_name(stored: int | str) -> str:
    return KIND_NAME[stored] if isinstance(stored, int) else str(stored)


def same_version(a: Node, b: Node) -> bool:
    if a.type != b.type or a.mode != b.mode or a.mtime_ns != b.mtime_ns:
        return False
    if a.uid != b.uid or a.gid != b.gid or a.xattrs != b.xattrs:
        return False
    if a.type == "dir":
        return True
    return (
        a.size == b.size and a.content == b.content and a.sha256 == b.sha256
        and a.link_target == b.link_target and a.rdev == b.rdev
    )  # fmt: skip


def lineage_key(snap: Snapshot) -> tuple[str, str]:
    """Snapshots of one host and one set of paths form a lineage, as restic picks parents."""
    return snap.hostname, json.dumps(sorted(snap.paths))


def order_key(snapshot_id: str, snap: Snapshot) -> tuple[str, str]:
    """Order inside a lineage: by time, then ID (stable for equal times).

    Times are compared as UTC instants in microseconds, written with a fixed width.
    """
    delta = snap.datetime - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return f"{micros + _OFFSET:020d}", snapshot_id


FORM_BYTES, FORM_ASCII, FORM_UTF8 = 0, 1, 2  # a name that is not UTF-8; ASCII; other UTF-8


def name_form(raw: bytes) -> int:
    if raw.isascii():
        return FORM_ASCII
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return FORM_BYTES
    return FORM_UTF8


def fold(raw: bytes) -> str:
    """What ``--ignore-case`` compares: the name's Unicode full case folding (str.casefold),
    so 'Ä' equals 'ä' and 'STRASSE' equals 'straße'. Bytes that are not UTF-8 stay as they
    are (surrogate escapes), so such a name only equals itself."""
    return raw.decode("utf-8", "surrogateescape").casefold()


def fold_text(raw: bytes) -> str:
    """:func:`fold` as text SQLite can store (bytes that are not UTF-8 become U+FFFD)."""
    return fold(raw).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def extension(raw: bytes) -> str:
    """Case-folded extension without the dot ('' for none and for dotfiles like .bashrc):
    what follows the last dot, as ``os.path.splitext`` splits a name (no slash in it)."""
    dot = raw.rfind(b".")
    if dot <= 0 or not raw[:dot].strip(b"."):  # no dot, or only dots before it
        return ""
    ext = raw[dot + 1 :]
    return ext.decode().lower() if ext.isascii() else ext.decode("utf-8", "backslashreplace").casefold()


def walk_order(path: bytes) -> list[bytes]:
    """Sort key giving the tree walk's order: parents first, names byte-sorted."""
    return path.split(b"/")
