"""A synthetic file tree with daily churn, for the catalog benchmark at scale.

Walking a real 1M-file filesystem 100 times with amber's archiver would take hours on
2 cores, and the catalog only sees trees. So the same deterministic model
(:class:`TreeModel`) is written two ways:

* :func:`write_amber` stores it straight into an amber repository through the
  repository API: real encrypted trees and snapshots, exactly what a backup writes,
  but files carry no data blobs (``content`` is empty; ``size`` and ``sha256`` are
  set). Good for ``find``, ``history``, the catalog; not for ``restore`` or ``check``.
* :func:`write_files` materialises one state on a real filesystem (small random
  contents, the model's mtimes), for ``restic backup``.

Names: half unique per file (``IMG_0001234.jpg``), half drawn from a pool of
common names (``index.html``, ``main.py`` ...), as in real trees where many base
names repeat. Churn is clustered, as real churn is: each snapshot rewrites
``CHANGES_PER_DIR`` files in each of a few directories.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

FILES_PER_DIR = 1000
DIRS_PER_TOP = 10
CHANGES_PER_DIR = 200
UNIQUE_STEMS = ("IMG", "scan", "report", "invoice", "notes", "track")
UNIQUE_EXTS = ("jpg", "pdf", "odt", "txt", "png", "mp3")
COMMON = ("index.html", "main.py", "README.md", "Makefile", "__init__.py", "config.json", "style.css",
          "test_utils.py", "LICENSE", "setup.cfg", "app.js", "data.csv", "Cargo.toml", "go.mod")  # fmt: skip
START = dt.datetime(2026, 1, 1, 3, 0, tzinfo=dt.UTC)


@dataclass
class Entry:
    size: int
    mtime_ns: int
    digest: bytes


@dataclass
class TreeModel:
    """``files`` files in directories of FILES_PER_DIR; :meth:`churn` changes ``rate`` of them."""

    files: int
    rate: float
    seed: int = 7
    dirs: list[dict[bytes, Entry]] = field(default_factory=list)
    changed: list[tuple[int, bytes]] = field(default_factory=list)  # by the last churn

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        t0 = int(START.timestamp()) * 10**9
        for d in range((self.files + FILES_PER_DIR - 1) // FILES_PER_DIR):
            entries: dict[bytes, Entry] = {}
            for j in range(min(FILES_PER_DIR, self.files - d * FILES_PER_DIR)):
                i = d * FILES_PER_DIR + j
                name = self._name(i, j, rng)
                entries[name] = Entry(rng.randrange(16, 200), t0 - rng.randrange(10**9 * 86400 * 900),
                                      _digest(i, 0))  # fmt: skip
            self.dirs.append(entries)
        self._rng = rng
        self.generation = 0

    @staticmethod
    def _name(i: int, j: int, rng: random.Random) -> bytes:
        if i % 10_000 == 2:
            return f"a{i % 7}b_{i}.txt".encode()  # for a pattern without a 3-character literal
        if i % 10_000 == 3:
            return f"disk_{i:07d}.iso".encode()  # a rare extension
        if j % 2 == 0:
            common = COMMON[(j // 2) % len(COMMON)]
            return f"{common.rpartition('.')[0] or common}_{j // 2:03d}.{_ext(j)}".encode()
        stem = UNIQUE_STEMS[(i // 2) % len(UNIQUE_STEMS)]
        return f"{stem}_{i:07d}.{UNIQUE_EXTS[(i // 7) % len(UNIQUE_EXTS)]}".encode()

    def dir_path(self, d: int) -> tuple[bytes, bytes]:
        return f"d{d // DIRS_PER_TOP:04d}".encode(), f"s{d % DIRS_PER_TOP}".encode()

    def churn(self) -> set[int]:
        """Change ``rate`` of the files, CHANGES_PER_DIR per directory. Returns the changed directories."""
        self.generation += 1
        want = max(1, int(self.files * self.rate))
        per_dir = min(CHANGES_PER_DIR, FILES_PER_DIR)
        chosen = self._rng.sample(range(len(self.dirs)), min(len(self.dirs), max(1, want // per_dir)))
        now = int((START + dt.timedelta(days=self.generation)).timestamp()) * 10**9
        self.changed = []
        for d in chosen:
            names = sorted(self.dirs[d])
            for k, name in enumerate(self._rng.sample(names, min(per_dir, len(names)))):
                self.dirs[d][name] = Entry(self._rng.randrange(16, 200), now - k * 10**6,
                                           _digest(d * FILES_PER_DIR + k, self.generation))  # fmt: skip
                self.changed.append((d, name))
        return set(chosen)

    def snapshot_time(self) -> str:
        return (START + dt.timedelta(days=self.generation, minutes=5)).isoformat()


def _ext(j: int) -> str:
    return COMMON[(j // 2) % len(COMMON)].rpartition(".")[2] or "txt"


def _digest(i: int, generation: int) -> bytes:
    return hashlib.sha256(f"{i}/{generation}".encode()).digest()


def write_amber(model: TreeModel, repo: object, snapshots: int, on_snapshot: object = None) -> Iterator[str]:
    """Store ``snapshots`` snapshots of the model (churning before each but the first).
    ``repo`` is an open amber Repository. Yields snapshot IDs."""
    from amber.repository import Node, Snapshot, Tree

    def leaf(d: int) -> bytes:
        nodes = [Node(name=n, type="file", mode=0o644, uid=1000, gid=1000, mtime_ns=e.mtime_ns, size=e.size,
                      sha256=e.digest) for n, e in sorted(model.dirs[d].items())]  # fmt: skip
        return repo.save_tree(Tree(nodes=nodes))[0]  # type: ignore[attr-defined, no-any-return]

    def dirnode(name: bytes, subtree: bytes) -> Node:
        return Node(name=name, type="dir", mode=0o755, uid=1000, gid=1000, mtime_ns=10**18, subtree=subtree)

    leaves = [leaf(d) for d in range(len(model.dirs))]
    for n in range(snapshots):
        if n:
            for d in model.churn():
                leaves[d] = leaf(d)
        tops: dict[bytes, list[Node]] = {}
        for d, tid in enumerate(leaves):
            top, sub = model.dir_path(d)
            tops.setdefault(top, []).append(dirnode(sub, tid))
        data_nodes = [dirnode(t, repo.save_tree(Tree(nodes=subs))[0]) for t, subs in sorted(tops.items())]  # type: ignore[attr-defined]
        data_tree = repo.save_tree(Tree(nodes=data_nodes))[0]  # type: ignore[attr-defined]
        bench_tree = repo.save_tree(Tree(nodes=[dirnode(b"data", data_tree)]))[0]  # type: ignore[attr-defined]
        root = repo.save_tree(Tree(nodes=[dirnode(b"bench", bench_tree)]))[0]  # type: ignore[attr-defined]
        repo.blobs.flush()  # type: ignore[attr-defined]
        yield repo.save_snapshot(Snapshot(time=model.snapshot_time(), tree=root, paths=["/bench/data"],  # type: ignore[attr-defined]
                                          hostname="bench", username="bench"))  # fmt: skip


def write_files(model: TreeModel, root: Path, only_changed: bool = False) -> None:
    """Write the model's files under ``root``: all of them, or those the last churn changed."""
    rng = random.Random(model.generation)
    if only_changed:
        todo = [(d, name) for d, name in model.changed]
    else:
        todo = [(d, name) for d, entries in enumerate(model.dirs) for name in entries]
    made: set[int] = set()
    for d, name in todo:
        top, sub = model.dir_path(d)
        where = os.path.join(root, top.decode(), sub.decode())
        if d not in made:
            os.makedirs(where, exist_ok=True)
            made.add(d)
        e = model.dirs[d][name]
        path = os.path.join(where, name.decode())
        with open(path, "wb") as f:
            f.write(rng.randbytes(e.size))
        os.utime(path, ns=(e.mtime_ns, e.mtime_ns))
