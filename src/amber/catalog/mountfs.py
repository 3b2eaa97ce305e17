"""The mounted view of a repository, without FUSE: lookup, getattr, readdir, readlink, read.

Layout (restic's, plus a versions view)::

    ids/<short id>/...              one directory per snapshot, its root tree below
    snapshots/<time>/...            latest -> the newest <time>
    hosts/<host>/<time>/...         latest per host
    tags/<tag>/<time>/...           latest per tag
    versions/<path>/<name>@<time>   every distinct version of a file, named by when it first appeared

Paths are bytes. The snapshot list is read again at most every ``refresh_interval``
seconds, so new snapshots appear while mounted. File data goes through a
:class:`BlobCache`. ``amber.catalog.fuse_adapter`` serves this over mfusepy.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterable

from amber.catalog.blobcache import DEFAULT_CAPACITY, BlobCache, FileContent
from amber.catalog.mountentries import Attr, Entry
from amber.catalog.mountnames import LATEST, SnapshotDirs, snapshot_dirs, valid_name, version_names
from amber.catalog.mountversions import CatalogVersions, FileVersion, TreeEntries, TreeVersions, VersionSource
from amber.catalog.stats import time_ns
from amber.engine.treewalk import split_path
from amber.errors import AmberError, CatalogError, IntegrityError, NotFound, ObjectNotFound
from amber.repository import Node, Repository, Snapshot

__all__ = ["Attr", "Entry", "MountFS", "open_view"]

TOP = (b"hosts", b"ids", b"snapshots", b"tags", b"versions")
_MEMO_ENTRIES = 1024
_RESOLVED_ENTRIES = 16_384  # paths resolved since the snapshot list last changed


class MountFS:
    """Thread-safe: metadata under one lock, file data through the shared blob cache."""

    def __init__(
        self, repo: Repository, versions: VersionSource | None = None, *,
        cache_bytes: int = DEFAULT_CAPACITY, refresh_interval: float = 3.0,
        clock: Callable[[], float] = time.monotonic, notice: Callable[[str], None] = lambda _: None,
    ) -> None:  # fmt: skip
        self.repo = repo
        self.entries = TreeEntries(repo.load_tree)
        self.versions: VersionSource = versions or TreeVersions(self.entries)
        self.cache = BlobCache(self._load_blob, cache_bytes)
        self._interval = refresh_interval
        self._clock = clock
        self._notice = notice
        self._lock = threading.RLock()
        self._snapshots: dict[str, Snapshot] = {}
        self._listed: set[str] = set()  # names at the last listing, readable or not
        self._groups = SnapshotDirs()
        self._listed_at: float | None = None
        # Per snapshot list: what the version source said about a path.
        self._children: dict[bytes, set[bytes]] = {}
        self._versions: dict[bytes, list[tuple[bytes, FileVersion]]] = {}
        self._resolved: dict[bytes, Entry] = {}
        self._listings: dict[bytes, tuple[Entry, list[bytes]]] = {}  # readdir's answers, by path
        self._handles: dict[int, FileContent] = {}
        self._next_handle = itertools.count(1)
        self._uid, self._gid = os.getuid(), os.getgid()
        self._started_ns = time.time_ns()
        self.refresh(force=True)

    def _load_blob(self, blob_id: bytes) -> bytes:
        """A blob; when it is not where the index said, a prune moved it: reload and retry once."""
        try:
            return self.repo.blobs.load(blob_id)
        except ObjectNotFound:
            with self._lock:
                self.repo.load_index()
            return self.repo.blobs.load(blob_id)

    # -- the snapshot list ------------------------------------------------
    def refresh(self, force: bool = False) -> bool:
        """Read the snapshot list again if it is due; True when it changed.

        Nothing changes unless every step succeeds, so a failure is retried next time.
        """
        with self._lock:
            now, last = self._clock(), self._listed_at
            if not force and last is not None and now - last < self._interval:
                return False
            first = last is None
            self._listed_at = now
            names = set(self.repo.snapshot_names())
            if names == self._listed and not force:
                return False
            snapshots = {sid: snap for sid, snap in self._snapshots.items() if sid in names}
            for sid in sorted(names - self._listed):
                try:
                    snapshots[sid] = self.repo.load_snapshot(sid)
                except AmberError as exc:  # left out, and not tried again while it is listed
                    self._notice(f"snapshot {sid[:8]} left out: {exc}")
            if not first and set(snapshots) - set(self._snapshots):
                self.repo.load_index()  # new snapshots bring new packs
            ordered = sorted(snapshots.items(), key=lambda item: (item[1].datetime, item[0]))
            groups = snapshot_dirs(ordered)
            self._update_versions(ordered)
            self._snapshots, self._groups, self._listed = snapshots, groups, names
            self._children.clear()
            self._versions.clear()
            self._resolved.clear()
            self._listings.clear()
            return True

    def _update_versions(self, ordered: list[tuple[str, Snapshot]]) -> None:
        try:
            self.versions.update(ordered)
        except CatalogError as exc:
            self._use_trees(exc, ordered)

    def _use_trees(self, why: CatalogError, ordered: list[tuple[str, Snapshot]]) -> None:
        """The catalog failed: list versions from the trees from now on."""
        if not isinstance(self.versions, CatalogVersions):
            raise why
        self._notice(f"{why.message}; listing versions from the trees instead")
        with contextlib.suppress(Exception):
            self.versions.close()
        self.versions = TreeVersions(self.entries)
        self.versions.update(ordered)

    # -- attributes -------------------------------------------------------
    def _dir_attr(self, mtime_ns: int | None = None) -> Attr:
        when = self._started_ns if mtime_ns is None else mtime_ns
        return Attr("dir", 0o555, 0, when, when, when, self._uid, self._gid)

    def _link_attr(self, target: bytes) -> Attr:
        return Attr("symlink", 0o777, len(target), self._started_ns, uid=self._uid, gid=self._gid)

    @staticmethod
    def _node_attr(node: Node) -> Attr:
        size = len(node.link_target) if node.type == "symlink" else node.size if node.type == "file" else 0
        return Attr(node.type, node.mode, size, node.mtime_ns, node.atime_ns or node.mtime_ns,
                    node.ctime_ns or node.mtime_ns, node.uid, node.gid, node.rdev)  # fmt: skip

    # -- resolving paths --------------------------------------------------
    def _listing(self, names: Iterable[bytes]) -> Entry:
        items = sorted(names)
        return Entry(self._dir_attr(), children=lambda: items)

    def _dated_dir(self, named: dict[bytes, str], rest: list[bytes]) -> Entry:
        """A directory of <time> snapshot directories with a ``latest`` link."""
        if not rest:
            return self._listing([*named, *([LATEST] if named else [])])
        if rest[0] == LATEST and named:
            newest = list(named)[-1]
            if len(rest) == 1:
                return Entry(self._link_attr(newest), link=newest)
            raise NotFound("latest is a symbolic link")
        sid = named.get(rest[0])
        if sid is None:
            raise NotFound(f"no snapshot named {rest[0]!r}")
        return self._in_snapshot(sid, rest[1:])

    def _in_snapshot(self, sid: str, rest: list[bytes]) -> Entry:
        snap = self._snapshots[sid]
        tree_id = snap.tree
        node: Node | None = None
        for part in rest:
            if node is not None and node.type != "dir":
                raise NotFound("not a directory")
            found = self.entries(tree_id).get(part)
            if found is None:
                raise NotFound(f"{part!r} is not in snapshot {sid[:8]}")
            node, tree_id = found, found.subtree if found.type == "dir" else b""
        if node is None:
            root = snap.tree
            return Entry(self._dir_attr(time_ns(snap.datetime)), children=lambda: sorted(self.entries(root)))
        if node.type == "dir":
            sub = node.subtree
            return Entry(self._node_attr(node), children=lambda: sorted(self.entries(sub)))
        found = node
        link = node.link_target if node.type == "symlink" else None
        return Entry(self._node_attr(node), link=link, node=lambda: found)

    def _versions_of(self, path: bytes) -> list[tuple[bytes, FileVersion]]:
        named = self._versions.get(path)
        if named is None:
            try:
                found = self.versions.versions(path)
            except CatalogError as exc:
                self._use_trees(exc, self._groups.ordered)
                found = self.versions.versions(path)
            names = version_names(split_path(path)[-1], [v.first_seen for v in found])
            named = list(zip(names, found, strict=True))
            if len(self._versions) >= _MEMO_ENTRIES:
                self._versions.clear()
            self._versions[path] = named
        return named

    def _children_of(self, path: bytes) -> set[bytes]:
        names = self._children.get(path)
        if names is None:
            try:
                names = self.versions.children(path)
            except CatalogError as exc:
                self._use_trees(exc, self._groups.ordered)
                names = self.versions.children(path)
            if len(self._children) >= _MEMO_ENTRIES:
                self._children.clear()
            self._children[path] = names
        return names

    def _in_versions(self, rest: list[bytes]) -> Entry:
        """``versions/a/b`` is a directory when /a/b exists anywhere; it holds b@<time> files."""
        path = b"".join(b"/" + p for p in rest)
        if not rest:
            return self._listing(self._children_of(b""))
        parent = b"".join(b"/" + p for p in rest[:-1])
        if rest[-1] in self._children_of(parent):
            listing = {name for name, _ in self._versions_of(path)} | self._children_of(path)
            return self._listing(listing)
        if len(rest) >= 2:
            for name, version in self._versions_of(parent):
                if name == rest[-1]:
                    return self._version_entry(version, parent)
        raise NotFound(f"{path!r} has no versions")

    def _version_entry(self, version: FileVersion, path: bytes) -> Entry:
        attr = Attr(version.kind, version.mode, version.size, version.mtime_ns, version.mtime_ns,
                    version.mtime_ns, self._uid, self._gid)  # fmt: skip

        def node() -> Node:
            with self._lock:
                if version.snapshot_id not in self._snapshots:
                    raise NotFound(f"snapshot {version.snapshot_id[:8]} is gone")
                entry = self._in_snapshot(version.snapshot_id, split_path(path))
            if entry.node is None:
                raise IntegrityError(f"the version of {path!r} is not a file in its snapshot")
            return entry.node()

        return Entry(attr, node=node)

    def lookup(self, path: bytes) -> Entry:
        with self._lock:
            self.refresh()
            entry = self._resolved.get(path)
            if entry is None:
                entry = self._resolve(split_path(path))
                if len(self._resolved) >= _RESOLVED_ENTRIES:
                    self._resolved.clear()
                self._resolved[path] = entry
            return entry

    def _resolve(self, parts: list[bytes]) -> Entry:
        if any(not valid_name(p) for p in parts):
            raise NotFound("invalid name")
        g = self._groups
        if not parts:
            return self._listing(TOP)
        top, rest = parts[0], parts[1:]
        if top == b"snapshots":
            return self._dated_dir(g.times, rest)
        if top == b"ids":
            if not rest:
                return self._listing(g.ids)
            sid = g.ids.get(rest[0]) or rest[0].decode("latin-1")  # a full ID works too
            if sid not in self._snapshots:
                raise NotFound(f"no snapshot {rest[0]!r}")
            return self._in_snapshot(sid, rest[1:])
        if top in (b"hosts", b"tags"):
            groups = g.hosts if top == b"hosts" else g.tags
            if not rest:
                return self._listing(groups)
            if rest[0] not in groups:
                raise NotFound(f"no {top.decode()[:-1]} {rest[0]!r}")
            return self._dated_dir(groups[rest[0]], rest[1:])
        if top == b"versions":
            return self._in_versions(rest)
        raise NotFound(f"{b'/'.join(parts)!r} does not exist")

    # -- the operations FUSE calls ---------------------------------------
    def getattr(self, path: bytes) -> Attr:
        return self.lookup(path).attr

    def readdir(self, path: bytes) -> list[bytes]:
        entry = self.lookup(path)
        if entry.children is None:
            raise NotFound("not a directory")
        with self._lock:
            listed = self._listings.get(path)
            if listed is None or listed[0] is not entry:  # kept as long as the entry is
                if len(self._listings) >= _MEMO_ENTRIES:
                    self._listings.clear()
                listed = self._listings[path] = (entry, [n for n in entry.children() if valid_name(n)])
            return list(listed[1])

    def readlink(self, path: bytes) -> bytes:
        entry = self.lookup(path)
        if entry.link is not None:
            return entry.link
        if entry.node is not None and entry.attr.kind == "symlink":
            return entry.node().link_target
        raise NotFound("not a symbolic link")

    def content(self, path: bytes) -> FileContent:
        entry = self.lookup(path)
        if entry.node is None or entry.attr.kind != "file":
            raise NotFound("not a regular file")
        node = entry.node()
        try:
            lengths = [self.repo.blobs.locate(b).plain_length for b in node.content]
        except ObjectNotFound:
            with self._lock:
                self.repo.load_index()  # a backup or prune since the last reload
            lengths = [self.repo.blobs.locate(b).plain_length for b in node.content]
        return FileContent(node.content, lengths, self.cache)

    def read(self, path: bytes, offset: int, size: int) -> bytes:
        return self.content(path).read(offset, size)

    def open(self, path: bytes) -> int:
        content = self.content(path)
        with self._lock:
            handle = next(self._next_handle)
            self._handles[handle] = content
        return handle

    def read_handle(self, handle: int, offset: int, size: int) -> bytes:
        with self._lock:
            content = self._handles.get(handle)
        if content is None:
            raise NotFound(f"no open file {handle}")
        return content.read(offset, size)

    def release(self, handle: int) -> None:
        with self._lock:
            self._handles.pop(handle, None)

    def close(self) -> None:
        self.cache.close()
        if isinstance(self.versions, CatalogVersions):
            with contextlib.suppress(Exception):
                self.versions.close()


def open_view(
    repo: Repository, use_catalog: bool, notice: Callable[[str], None],
    cache_bytes: int = DEFAULT_CAPACITY, refresh_interval: float = 3.0,
) -> MountFS:  # fmt: skip
    """A view whose versions come from the catalog when there is one, else from the trees."""
    source = CatalogVersions.open(repo, notice) if use_catalog else None
    return MountFS(repo, source, cache_bytes=cache_bytes, refresh_interval=refresh_interval, notice=notice)
