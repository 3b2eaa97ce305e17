"""The checker: structure always, data on request; damage named by snapshot and path."""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from amber.engine.progress import NullProgress, Progress
from amber.errors import AmberError, InvalidTree, UsageError
from amber.repository import BlobType, Location, Repository
from amber.repository.model import MAX_PATH, MAX_TREE_DEPTH
from amber.repository.walstore import wal_blobs
from amber.storage import FileType

_MIN_HEADER = 28 + 1 + 4  # AEAD overhead, shortest msgpack array, u32 length

# per tree: (subdirectories as (name, tree id), files with a problem as (name, why),
# the length of its longest name)
_TreeInfo = tuple[list[tuple[bytes, bytes]], list[tuple[bytes, str]], int]


@dataclass
class CheckReport:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    damaged: list[tuple[str, str]] = field(default_factory=list)  # (snapshot id, path)
    snapshots: int = 0
    packs: int = 0
    packs_read: int = 0
    blobs: int = 0
    wal_objects: int = 0  # archived WAL files (services/wal.py), and how many were read
    wal_read: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors


def parse_subset(spec: str, packs: list[str], seed: int | None = None) -> list[str]:
    """``n/t`` picks the n-th of t groups (by pack ID); ``P%`` a random P percent."""
    spec = spec.strip()
    try:
        if spec.endswith("%"):
            pct = float(spec[:-1])
            if not 0 < pct <= 100:
                raise ValueError
            count = max(1, round(len(packs) * pct / 100)) if packs else 0
            return sorted(random.Random(seed).sample(packs, count))
        n, t = (int(x) for x in spec.split("/"))
        if not 1 <= n <= t:
            raise ValueError
    except ValueError as exc:
        raise UsageError(f"bad --read-data-subset {spec!r}: use n/t or P%") from exc
    return [p for p in packs if int(p[:8], 16) % t == n - 1]


class Checker:
    def __init__(self, repo: Repository, progress: Progress | None = None) -> None:
        self._repo = repo
        repo.cancel.watch()  # safe points: each pack and snapshot
        self._progress = progress or NullProgress()
        self.report = CheckReport()
        self._bad_blobs: dict[bytes, str] = {}
        self._referenced: set[bytes] = set()
        # tree -> the longest path at which nothing below it was found damaged
        # (a longer path can only push entries past MAX_PATH)
        self._sound: dict[bytes, int] = {}

    def run(self, read_data: bool = False, subset: str | None = None) -> CheckReport:
        self._check_locks()
        self._check_index_and_packs()
        if read_data or subset:
            packs = sorted(self._repo.blobs.index.packs() - self._missing_packs)
            self._read_packs(parse_subset(subset, packs) if subset else packs)
        self._check_snapshots()
        self._referenced.update(wal_blobs(self._repo))
        unused = sum(1 for blob_id, _ in self._repo.blobs.index.blobs() if blob_id not in self._referenced)
        if unused:
            self.report.warnings.append(
                f"{unused} indexed blob(s) are not referenced by any snapshot or WAL record "
                "(left by interrupted backups or removed snapshots; prune reclaims them)"
            )
        return self.report

    def _check_locks(self) -> None:
        """Lock files that cannot be read (damaged, planted, oversized) hold nothing: a warning."""
        unreadable: dict[str, str] = {}
        self._repo.lock_infos(unreadable)
        for name, why in sorted(unreadable.items()):
            self.report.warnings.append(
                f"lock {name[:16]} cannot be read ({why}); ignored (amber unlock --remove-all removes it)"
            )

    def _error(self, msg: str) -> None:
        self.report.errors.append(msg)

    def _check_index_and_packs(self) -> None:
        for name in self._repo.index_errors:
            self._error(f"index {name[:16]} cannot be read (damaged); run repair index")
        index = self._repo.blobs.index
        stored = {fi.name: fi.size for fi in self._repo.backend.list(FileType.PACK)}
        indexed = index.packs()
        self.report.packs = len(stored)
        self.report.blobs = len(index)
        needed_size: dict[str, int] = {}
        self._pack_entries: dict[str, list[tuple[bytes, Location]]] = {}
        for blob_id, loc in index.blobs():
            self._pack_entries.setdefault(loc.pack, []).append((blob_id, loc))
            end = loc.offset + loc.length
            if end > needed_size.get(loc.pack, 0):
                needed_size[loc.pack] = end
        self._missing_packs = indexed - stored.keys()
        for pack in sorted(self._missing_packs):
            self._error(f"pack {pack[:16]} is in the index but missing from storage")
        for pack, size in sorted(needed_size.items()):
            # after the last blob: a sealed header (28 bytes overhead + at least one
            # byte of msgpack) and its 4-byte length
            minimum = size + _MIN_HEADER
            if pack in stored and stored[pack] < minimum:
                self._error(f"pack {pack[:16]} is truncated ({stored[pack]} < {minimum} bytes)")
                self._missing_packs.add(pack)
        why = (
            "its index may be the damaged one"
            if self._repo.index_errors
            else "left by an interrupted backup; harmless"
        )
        for pack in sorted(stored.keys() - indexed):
            self.report.warnings.append(f"pack {pack[:16]} is not indexed ({why})")
        for blob_id, loc in index.blobs():
            if loc.pack in self._missing_packs:
                self._bad_blobs[blob_id] = f"pack {loc.pack[:16]} missing or truncated"

    def _read_packs(self, packs: list[str]) -> None:
        index = self._repo.blobs.index
        for pack in packs:
            self._repo.cancel.check()  # a safe point: check writes nothing
            self.report.packs_read += 1
            try:
                data, blobs = self._repo.blobs.read_pack(pack)
            except AmberError as exc:
                self._error(f"pack {pack[:16]}: {exc}")
                self._mark_pack_bad(pack, str(exc))
                continue
            if hashlib.sha256(data).hexdigest() != pack:
                self._error(f"pack {pack[:16]}: content does not match its name")
            in_header = {(b.id, b.offset): b for b in blobs}
            for blob_id, entry in self._pack_entries.get(pack, []):
                found = in_header.get((blob_id, entry.offset))
                if found is None or (found.length, found.raw_length, found.type) != (
                    entry.length, entry.raw_length, entry.type,
                ):  # fmt: skip
                    why = "index entry does not match the pack header"
                    self._error(f"pack {pack[:16]}: blob {blob_id.hex()[:16]}: {why}")
                    self._bad_blobs[blob_id] = why
            view = memoryview(data)
            for b in blobs:
                loc = index.lookup(b.id)
                if loc is None or loc.pack != pack or loc.offset != b.offset:
                    continue  # a duplicate copy; the indexed one is checked where it lives
                try:
                    sealed = view[b.offset : b.offset + b.length]
                    self._repo.blobs.decode_blob(b.id, sealed, b.raw_length, b.type)
                except AmberError as exc:
                    self._error(f"pack {pack[:16]}: blob {b.id.hex()[:16]}: {exc}")
                    self._bad_blobs[b.id] = str(exc)
            self._progress.bytes_done(len(data))

    def _mark_pack_bad(self, pack: str, why: str) -> None:
        for blob_id, _ in self._pack_entries.get(pack, []):
            self._bad_blobs.setdefault(blob_id, why)

    def _blob_problem(self, blob_id: bytes, want: BlobType) -> str | None:
        if blob_id in self._bad_blobs:
            return self._bad_blobs[blob_id]
        kind = self._repo.blobs.index.blob_type(blob_id)
        if kind is None:
            return "blob missing from index"
        if kind is not want:
            return f"blob has type {kind.name.lower()}, expected {want.name.lower()}"
        return None

    def _check_snapshots(self) -> None:
        errors: list[tuple[str, AmberError]] = []
        snaps = self._repo.snapshots(errors)
        for name, exc in errors:
            self._error(f"snapshot {name[:8]}: {exc}")
        self.report.snapshots = len(snaps)
        trees: dict[bytes, _TreeInfo] = {}
        bad_trees: dict[bytes, str] = {}
        for name, snap in sorted(snaps.items(), key=lambda s: s[1].time):
            self._repo.cancel.check()
            for path, problem in self._walk(snap.tree, trees, bad_trees):
                where = os.fsdecode(path) or "/"
                self.report.damaged.append((name, where))
                shown = where if len(where) <= 240 else f"{where[:120]}...{where[-120:]}"  # near MAX_PATH
                self._error(f"snapshot {name[:8]}: {shown}: {problem}")

    def _tree(
        self, tree_id: bytes, trees: dict[bytes, _TreeInfo],
        bad: dict[bytes, str],
    ) -> _TreeInfo | str:  # fmt: skip
        """A tree's nodes and its files' problems, memoized; or why it is unreadable."""
        if tree_id in bad:
            return bad[tree_id]
        if tree_id in trees:
            return trees[tree_id]
        problem = self._blob_problem(tree_id, BlobType.TREE)
        self._referenced.add(tree_id)
        if problem is None:
            try:
                nodes = self._repo.load_tree(tree_id).nodes
            except InvalidTree as exc:
                problem = str(exc)
            except AmberError as exc:
                problem = f"tree unreadable: {exc}"
        if problem is not None:
            bad[tree_id] = problem
            return problem
        damaged = []
        for node in nodes:
            self._referenced.update(node.content)
            if node.type == "dir" and not node.subtree:
                damaged.append((node.name, "directory has no subtree"))
            elif node.type == "file":
                for blob_id in node.content:
                    why = self._blob_problem(blob_id, BlobType.DATA)
                    if why:
                        damaged.append((node.name, why))
                        break
        subdirs = [(n.name, n.subtree) for n in nodes if n.type == "dir" and n.subtree]
        info = (subdirs, damaged, max((len(n.name) for n in nodes), default=0))
        trees[tree_id] = info
        return info

    def _walk(
        self, root: bytes, trees: dict[bytes, _TreeInfo],
        bad: dict[bytes, str],
    ) -> Iterator[tuple[bytes, str]]:  # fmt: skip
        """Yield (path, problem) for every damaged node under ``root``.

        A tree is walked once per snapshot, at the first path that reaches it, and
        not at all once everything below it is known to be sound: a subtree shared
        by many paths (or snapshots) costs one visit. Depth and path length are
        capped (design §9), so memory stays linear in the depth.
        """
        found = self._tree(root, trees, bad)
        if isinstance(found, str):
            yield b"", found
            return
        seen = {(root, 0)}  # (tree, path length): what a tree holds past MAX_PATH depends on it
        stack = [_Frame(b"", root, found, 0)]
        yield from stack[0].damage()
        while stack:
            frame = stack[-1]
            entry = next(frame.subdirs, None)
            if entry is None:
                stack.pop()
                if not frame.damaged:
                    self._sound[frame.tree_id] = max(len(frame.path), self._sound.get(frame.tree_id, -1))
                elif stack:
                    stack[-1].damaged = True
                continue
            name, sub = entry
            path = frame.path + b"/" + name
            if self._sound.get(sub, -1) >= len(path):
                continue
            if (sub, len(path)) in seen or len(path) > MAX_PATH:
                frame.damaged = True  # reported already: where it was first reached, or by damage()
                continue
            if frame.depth >= MAX_TREE_DEPTH:
                frame.damaged = True
                if not frame.reported:
                    frame.reported = True
                    yield path, f"deeper than {MAX_TREE_DEPTH} levels (damaged or crafted tree)"
                continue
            seen.add((sub, len(path)))
            found = self._tree(sub, trees, bad)
            if isinstance(found, str):
                frame.damaged = True
                yield path, found
                continue
            child = _Frame(path, sub, found, frame.depth + 1)
            stack.append(child)
            yield from child.damage()


class _Frame:
    """A tree being walked by the checker: its path, remaining subdirectories and whether it is sound."""

    __slots__ = ("damaged", "depth", "files", "longest", "path", "reported", "subdirs", "tree_id")

    def __init__(self, path: bytes, tree_id: bytes, info: _TreeInfo, depth: int) -> None:
        self.path = path
        self.tree_id = tree_id
        self.subdirs = iter(info[0])
        self.files = info[1]
        self.longest = info[2]
        self.depth = depth
        self.damaged = bool(info[1])  # here or, once known, below
        self.reported = False  # a limit was reported here already

    def damage(self) -> Iterator[tuple[bytes, str]]:
        for name, why in self.files:
            yield self.path + b"/" + name, why
        if len(self.path) + 1 + self.longest > MAX_PATH:
            self.damaged = True
            yield self.path, f"entries with paths longer than {MAX_PATH} bytes (damaged or crafted tree)"
