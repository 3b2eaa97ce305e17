"""Reading file metadata into nodes, and applying it back on restore."""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat
from collections.abc import Callable
from functools import lru_cache

import msgspec

from amber.repository.model import Node

_IGNORABLE = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODATA, errno.EPERM, errno.EACCES}


@lru_cache(maxsize=4096)
def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


@lru_cache(maxsize=4096)
def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""


def node_type(mode: int) -> str | None:
    """The node type for an st_mode, or None for sockets and unknown kinds."""
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISCHR(mode):
        return "chardev"
    if stat.S_ISBLK(mode):
        return "blockdev"
    return None


def read_xattrs(path: bytes) -> list[tuple[bytes, bytes]]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in _IGNORABLE:
            return []
        raise
    out = []
    for name in sorted(names):
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError as exc:
            if exc.errno in _IGNORABLE:
                continue
            raise
        out.append((os.fsencode(name), value))
    return out


def unchanged_content(
    prev: Node | None, st: os.stat_result, has: Callable[[bytes], bool], stable_ids: bool = True
) -> bool:
    """The file's content may be taken from ``prev``: same size, times and inode, blobs stored.

    With ``stable_ids=False`` (a source whose inodes and ctimes are new, see
    source.py) only the size and mtime are compared, as restic's --ignore-inode.
    Requiring every blob to be ``has``-present is what heals a repository: after
    a lost pack is dropped from the index, the next backup reads such files again.
    """
    if (
        prev is None
        or prev.type != "file"
        or prev.damaged
        or prev.size != st.st_size
        or prev.mtime_ns != st.st_mtime_ns
        or (stable_ids and (prev.ctime_ns != st.st_ctime_ns or prev.inode != st.st_ino))
    ):
        return False
    return all(has(blob_id) for blob_id in prev.content)


def same_file_node(prev: Node, st: os.stat_result) -> bool:
    """lstat gives nothing that would change ``prev`` (a file node with the same ctime).

    An equal ctime means mode, owner and xattrs did not change (make_node's rule),
    so the node can be reused as is once its content is known to be unchanged.
    """
    return (
        prev.atime_ns == st.st_atime_ns
        and prev.device == st.st_dev
        and prev.links == st.st_nlink
        and stat.S_ISREG(st.st_mode)
    )


def make_node(name: bytes, path: bytes, st: os.stat_result, kind: str, prev: Node | None = None) -> Node:
    """A node from lstat; xattrs and link target come from ``prev`` when its ctime matches.

    Changing xattrs, a mode, an owner or a symlink bumps ctime, so an equal
    ctime (and inode) means those did not change and need no extra syscalls.
    """
    if prev is not None and prev.type == kind and prev.ctime_ns == st.st_ctime_ns \
            and prev.inode == st.st_ino and not prev.damaged:  # fmt: skip
        return msgspec.structs.replace(
            prev, atime_ns=st.st_atime_ns, mtime_ns=st.st_mtime_ns, size=st.st_size if kind == "file" else 0,
            device=st.st_dev, links=st.st_nlink, content=[], sha256=b"", subtree=b"",
        )  # fmt: skip
    node = Node(
        name=name,
        type=kind,
        mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        user=user_name(st.st_uid),
        group=group_name(st.st_gid),
        mtime_ns=st.st_mtime_ns,
        atime_ns=st.st_atime_ns,
        ctime_ns=st.st_ctime_ns,
        inode=st.st_ino,
        device=st.st_dev,
        links=st.st_nlink,
        xattrs=read_xattrs(path),
    )
    if kind == "file":
        node.size = st.st_size
    elif kind == "symlink":
        node.link_target = os.readlink(path)
    elif kind in ("chardev", "blockdev"):
        node.rdev = st.st_rdev
    return node


def keep_identity(node: Node, prev: Node | None) -> Node:
    """``node`` with ``prev``'s inode, device, ctime and atime when all else is the same.

    For sources without stable identities (source.py): an unchanged entry then
    encodes as it did, so its tree keeps its ID. A file with several links
    keeps its own inode and device: those pair it with its other links on restore.
    """
    if prev is None or prev.type != node.type or (node.type == "file" and node.links > 1):
        return node
    same = msgspec.structs.replace(
        prev, inode=node.inode, device=node.device, ctime_ns=node.ctime_ns, atime_ns=node.atime_ns,
        content=node.content, sha256=node.sha256, subtree=node.subtree, entropy=node.entropy,
    )  # fmt: skip
    if same != node:
        return node
    return msgspec.structs.replace(
        node, inode=prev.inode, device=prev.device, ctime_ns=prev.ctime_ns, atime_ns=prev.atime_ns
    )


@lru_cache(maxsize=4096)
def _uid_of(name: str) -> int | None:
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


@lru_cache(maxsize=4096)
def _gid_of(name: str) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


@lru_cache(maxsize=4096)
def _owner(user: str, group: str, uid: int, gid: int) -> tuple[int, int]:
    """Prefer names over numbers, as tar and restic do, when the name exists here."""
    by_name = _uid_of(user) if user else None
    group_by_name = _gid_of(group) if group else None
    return (uid if by_name is None else by_name), (gid if group_by_name is None else group_by_name)


def apply_to_fd(
    fd: int, node: Node, warnings: list[str], label: bytes, made: os.stat_result | None = None
) -> None:
    """Metadata of a file or directory through its open descriptor; ``label`` names it in warnings.

    ``made``: the descriptor's stat, when restore just made the file: no chown when its
    owner is already the node's, no chmod when its mode is (and no xattr may change it).
    """
    if made is None:
        _apply(fd, None, True, node, warnings, label)
    else:
        _apply(fd, None, True, node, warnings, label, (made.st_uid, made.st_gid), stat.S_IMODE(made.st_mode))


def apply_to_special(dir_fd: int, name: bytes, node: Node, warnings: list[str], label: bytes) -> None:
    """Metadata of a fifo or device node restore just made as ``name`` in ``dir_fd``.

    It is opened with ``O_PATH | O_NOFOLLOW`` (opening a fifo or device for I/O
    could block or act), checked to still be that kind, and changed through
    its ``/proc/self/fd`` link, which leads to that inode and nothing else.
    """
    try:
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as exc:
        warnings.append(f"{os.fsdecode(label)}: metadata: {exc.strerror}")
        return
    try:
        if node_type(os.fstat(fd).st_mode) != node.type:
            warnings.append(f"{os.fsdecode(label)}: metadata: replaced during restore")
            return
        _apply(f"/proc/self/fd/{fd}".encode(), None, True, node, warnings, label)
    finally:
        os.close(fd)


def apply_to_symlink(dir_fd: int, name: bytes, node: Node, warnings: list[str], label: bytes) -> None:
    """Metadata of the symlink ``name`` in ``dir_fd``, never following it (no chmod: Linux has none)."""
    _apply(name, dir_fd, False, node, warnings, label)


class _Label:
    """A path for warnings, decoded only when one is written (most files get none)."""

    __slots__ = ("path",)

    def __init__(self, path: bytes) -> None:
        self.path = path

    def __str__(self) -> str:
        return os.fsdecode(self.path)


def _apply(
    ref: int | bytes, dir_fd: int | None, follow: bool, node: Node, warnings: list[str], label: bytes,
    owner: tuple[int, int] | None = None, mode: int | None = None,
) -> None:  # fmt: skip
    """Ownership, xattrs (ACLs included), mode, then times: chown would clear setuid.

    ``owner`` and ``mode``: what the file has now, when known (no chown, no chmod to the same).
    """
    is_link = node.type == "symlink"
    where = _Label(label)
    ids = _owner(node.user, node.group, node.uid, node.gid)
    try:
        if owner != ids:
            os.chown(ref, *ids, dir_fd=dir_fd, follow_symlinks=follow)
    except OSError as exc:
        if exc.errno != errno.EPERM or os.geteuid() == 0:
            warnings.append(f"{where}: chown: {exc.strerror}")
    xattr_ref = ref
    if dir_fd is not None and isinstance(ref, bytes):  # os.setxattr takes no dir_fd: use its /proc link
        xattr_ref = f"/proc/self/fd/{dir_fd}/".encode() + ref
    for name, value in node.xattrs:
        try:
            os.setxattr(xattr_ref, name, value, follow_symlinks=follow)
        except OSError as exc:
            if not (is_link and exc.errno in _IGNORABLE):
                warnings.append(f"{where}: xattr {os.fsdecode(name)}: {exc.strerror}")
    if not is_link and (mode != node.mode or node.xattrs):  # an ACL changes the mode's group bits
        try:
            os.chmod(ref, node.mode, dir_fd=dir_fd)
        except OSError as exc:
            warnings.append(f"{where}: chmod: {exc.strerror}")
    try:
        os.utime(ref, ns=(node.atime_ns, node.mtime_ns), dir_fd=dir_fd, follow_symlinks=follow)
    except OSError as exc:
        warnings.append(f"{where}: utime: {exc.strerror}")
