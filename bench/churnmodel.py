"""A file tree whose churn brings new paths, for amber vs restic `find` on real backups.

Unlike bench/catalogmodel.py (a fixed set of names whose contents change), every step
of :meth:`ChurnModel.step` does what a working tree does between two daily backups:

* a photo import: a new directory ``photos/<year>/<day>-import`` of ``IMG_nnnnnnn.jpg``;
* new documents, sources, music and data files spread over existing directories;
* deletions: single files, and now and then a whole old directory;
* renames: one directory renamed (every path under it is new) and single files
  renamed (``report_..._v2.pdf``);
* modifications in place (new content and mtime, same path).

So the snapshots together hold many more distinct paths than any one of them:
:attr:`ChurnModel.seen` counts them. Extensions follow a skewed, realistic mix
(jpg and source files common, ``.iso`` about 1 file in 2,000); about 1 name in 2,000
is ``a<d>b_...`` so that ``a?b_*`` (no three-character literal) has matches.
:func:`apply` writes one state to disk: only what changed since the last call.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

AREAS = {  # area: (subdirectory kinds, files per directory (lo, hi))
    "photos": (("2019", "2020", "2021", "2022", "2023", "2024", "2025"), (80, 900)),
    "docs": (("finance", "legal", "hr", "projects", "archive", "scans"), (20, 400)),
    "src": (("app", "lib", "tools", "web", "tests", "vendor"), (5, 120)),
    "music": (("rock", "jazz", "classical", "pop", "podcasts"), (8, 30)),
    "data": (("exports", "logs", "sets", "backups"), (10, 600)),
}
EXTENSIONS = {  # area: extensions with weights
    "photos": (("jpg", 80), ("png", 8), ("heic", 6), ("mp4", 5), ("mov", 1)),
    "docs": (("pdf", 40), ("docx", 20), ("xlsx", 12), ("txt", 10), ("odt", 8), ("md", 6), ("pptx", 4)),
    "src": (
        ("py", 30),
        ("js", 20),
        ("ts", 10),
        ("c", 8),
        ("h", 8),
        ("go", 6),
        ("rs", 6),
        ("html", 5),
        ("css", 4),
    ),
    "music": (("mp3", 70), ("flac", 25), ("m4a", 5)),
    "data": (("csv", 40), ("log", 30), ("json", 15), ("parquet", 10), ("gz", 5)),
}
STEMS = {
    "docs": ("report", "invoice", "scan", "notes", "contract", "minutes"),
    "src": ("mod", "util", "test"),
    "music": ("track",),
    "data": ("export", "run", "sample"),
}
COMMON = ("index.html", "README.md", "main.py", "__init__.py", "config.json", "Makefile", "LICENSE")
T0 = 1_767_236_400 * 10**9  # 2026-01-01 03:00 UTC


@dataclass(frozen=True)
class Entry:
    size: int
    mtime_ns: int
    content: int  # seeds the bytes: a renamed file keeps its content


@dataclass
class ChurnModel:
    """``files`` files at first; each :meth:`step` adds, deletes, renames and modifies."""

    files: int
    adds: int = 4500
    deletes: int = 4500
    renames: int = 4000
    modifies: int = 2000
    seed: int = 11
    dirs: dict[str, dict[str, Entry]] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)  # every path any state held
    generation: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._counter = 0
        self._photo = 0
        self._content = 0
        while self.count() < self.files:
            self._new_dir(self.rng.choice(tuple(AREAS)), fill=True)
        self._note_seen()

    def count(self) -> int:
        return sum(len(entries) for entries in self.dirs.values())

    def paths(self) -> dict[str, Entry]:
        return {f"{d}/{n}": e for d, entries in self.dirs.items() for n, e in entries.items()}

    def _note_seen(self) -> None:
        self.seen.update(f"{d}/{n}" for d, entries in self.dirs.items() for n in entries)

    def _entry(self, size: int | None = None) -> Entry:
        self._content += 1
        day = 86_400 * 10**9
        back = self.rng.randrange(900 * day) if self.generation == 0 else self.rng.randrange(day)
        mtime = T0 + self.generation * day - back
        return Entry(size or int(16 * 2 ** (self.rng.random() * 7)), mtime, self._content)

    def _name(self, area: str) -> str:
        self._counter += 1
        c = self._counter
        if c % 2000 == 7:
            return f"disk_{c:07d}.iso"
        if c % 2000 == 13:
            return f"a{c % 7}b_{c:07d}.txt"
        ext = self.rng.choices(*zip(*EXTENSIONS[area], strict=True))[0]
        if area == "photos":
            self._photo += 1
            return f"IMG_{self._photo:07d}.{ext}" if ext != "mp4" else f"VID_{self._photo:07d}.{ext}"
        if area == "src" and self.rng.random() < 0.25:
            return f"{COMMON[c % len(COMMON)].partition('.')[0]}_{c:07d}.{ext}"
        return f"{self.rng.choice(STEMS[area])}_{c:07d}.{ext}"

    def _new_dir(self, area: str, fill: bool, count: int | None = None, tag: str = "") -> str:
        kinds, (lo, hi) = AREAS[area]
        self._counter += 1
        name = tag or f"{area[:-1] if area.endswith('s') else area}{self._counter:07d}"
        path = f"{area}/{self.rng.choice(kinds)}/{name}"
        entries = self.dirs.setdefault(path, {})
        want = count if count is not None else (self.rng.randrange(lo, hi) if fill else 0)
        for _ in range(want):
            entries[self._name(area)] = self._entry()
        return path

    def _random_files(self, k: int) -> list[tuple[str, str]]:
        """``k`` files, clustered: a few directories, several files in each."""
        out: list[tuple[str, str]] = []
        names = list(self.dirs)
        while len(out) < k:
            d = self.rng.choice(names)
            entries = self.dirs[d]
            if not entries:
                continue
            take = min(len(entries), 1 + self.rng.randrange(40))
            out.extend((d, n) for n in self.rng.sample(sorted(entries), take))
        return out[:k]

    def step(self) -> None:
        """One day's churn."""
        self.generation += 1
        rng = self.rng
        # Deletions: sometimes a whole old directory, the rest single files.
        gone = 0
        if rng.random() < 0.5:
            victim = rng.choice(list(self.dirs))
            gone += len(self.dirs.pop(victim))
        for d, n in self._random_files(max(0, self.deletes - gone)):
            if self.dirs.get(d, {}).pop(n, None) is not None:
                gone += 1
        # Renames: one directory (every path under it changes), then single files.
        renamed = 0
        while renamed < self.renames // 2:
            old = rng.choice(list(self.dirs))
            if len(self.dirs[old]) > self.renames:
                continue
            self.dirs[f"{old}_renamed{self.generation}"] = self.dirs.pop(old)
            renamed += len(self.dirs[f"{old}_renamed{self.generation}"])
        for d, n in self._random_files(max(0, self.renames - renamed)):
            entry = self.dirs[d].pop(n, None)
            if entry is not None:
                stem, _, ext = n.rpartition(".")
                self.dirs[d][f"{stem}_v{self.generation}.{ext}"] = entry
        # Additions: a photo import, the rest spread over existing directories.
        photos = self.adds // 3
        self._new_dir("photos", fill=False, count=photos, tag=f"import-{self.generation:04d}")
        areas = [a for a in AREAS if a != "photos"]
        targets = [d for d in self.dirs if d.split("/", 1)[0] in areas]
        for _ in range(self.adds - photos):
            d = rng.choice(targets)
            self.dirs[d][self._name(d.split("/", 1)[0])] = self._entry()
        for d, n in self._random_files(self.modifies):
            if n in self.dirs[d]:
                self.dirs[d][n] = self._entry()
        for d in [d for d, entries in self.dirs.items() if not entries]:
            del self.dirs[d]
        self._note_seen()


def content(entry: Entry) -> bytes:
    return hashlib.shake_128(entry.content.to_bytes(8, "little")).digest(entry.size)


def apply(root: Path, old: dict[str, Entry], new: dict[str, Entry]) -> tuple[int, int]:
    """Make ``root`` hold ``new`` given that it holds ``old``. Returns (written, removed)."""
    removed = 0
    for path in old.keys() - new.keys():
        os.unlink(root / path)
        removed += 1
    for d in sorted({p.rpartition("/")[0] for p in old} - {p.rpartition("/")[0] for p in new}, reverse=True):
        with contextlib.suppress(OSError):  # a parent still holds something
            os.removedirs(root / d)
    written = 0
    made: set[str] = set()
    for path, entry in new.items():
        if old.get(path) == entry:
            continue
        parent = path.rpartition("/")[0]
        if parent not in made:
            os.makedirs(root / parent, exist_ok=True)
            made.add(parent)
        with open(root / path, "wb") as f:
            f.write(content(entry))
        os.utime(root / path, ns=(entry.mtime_ns, entry.mtime_ns))
        written += 1
    return written, removed
