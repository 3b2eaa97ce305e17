"""Facts about how a snapshot changed from its parent, gathered during the backup walk.

No extra pass: the reader samples the first chunk it already holds (entropy and
the first bytes), and the directory finisher compares each directory's new
nodes with the parent tree's. ``amber.anomaly`` turns these facts into a verdict.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from dataclasses import dataclass, field

import zstandard

from amber.repository import Node

ENTROPY_SAMPLE = 4096  # bytes of the first chunk whose byte entropy is measured
ENTROPY_MIN_SAMPLE = 1024  # below this the estimate says little: not measured
HEAD_BYTES = 16  # first bytes kept (in memory only) to check the type magic
_FRAME_OVERHEAD = 6  # zstd frame header and block header of a stored (incompressible) block
_local = threading.local()  # a ZstdCompressor is not safe to share between threads
EXAMPLES = 10
TOP_DIRS = 5

# Extension -> accepted leading bytes. Only types whose magic is fixed and common.
_MAGIC: dict[bytes, tuple[bytes, ...]] = {
    b"pdf": (b"%PDF",),
    b"png": (b"\x89PNG",),
    b"jpg": (b"\xff\xd8\xff",),
    b"jpeg": (b"\xff\xd8\xff",),
    b"gif": (b"GIF8",),
    b"zip": (b"PK\x03\x04", b"PK\x05\x06"),
    b"docx": (b"PK\x03\x04",),
    b"xlsx": (b"PK\x03\x04",),
    b"pptx": (b"PK\x03\x04",),
    b"odt": (b"PK\x03\x04",),
    b"ods": (b"PK\x03\x04",),
    b"jar": (b"PK\x03\x04",),
    b"gz": (b"\x1f\x8b",),
    b"bz2": (b"BZh",),
    b"xz": (b"\xfd7zXZ\x00",),
    b"7z": (b"7z\xbc\xaf\x27\x1c",),
    b"doc": (b"\xd0\xcf\x11\xe0",),
    b"xls": (b"\xd0\xcf\x11\xe0",),
    b"sqlite": (b"SQLite format 3\x00",),
}

# Names ransomware leaves in each directory it encrypted (lower-cased stems).
_NOTE_WORDS = (b"decrypt", b"ransom", b"recover", b"restore", b"readme", b"read_me", b"how_to", b"help")
_NOTE_HINTS = (b"file", b"decrypt", b"ransom", b"recover", b"restore", b"instruction", b"encrypt")


def entropy_code(sample: bytes | memoryview) -> int:
    """Entropy of ``sample`` as a node stores it: 1 + 32 * bits/byte (1..256); 0 = not measured.

    Estimated by compressibility (zstd level 1 on the first 4 KiB, about 20 µs and
    without the GIL): a byte histogram in Python costs 40 times as much. Random and
    already-compressed data come out near 8 bits/byte, text and programs well below.
    """
    n = min(len(sample), ENTROPY_SAMPLE)
    if n < ENTROPY_MIN_SAMPLE:
        return 0
    packer = getattr(_local, "zstd", None)
    if packer is None:
        packer = _local.zstd = zstandard.ZstdCompressor(level=1, write_content_size=False)
    packed = len(packer.compress(bytes(sample[:n]))) - _FRAME_OVERHEAD
    bits = max(0.0, min(8.0, 8 * packed / n))
    return 1 + min(255, int(bits * 32))


def entropy_bits(code: int) -> float | None:
    """Bits per byte from a node's ``entropy`` field; None when not measured."""
    return None if code <= 0 else (code - 1) / 32


def extension(name: bytes) -> bytes:
    dot = name.rfind(b".")
    return name[dot + 1 :].lower() if 0 < dot < len(name) - 1 else b""


def magic_mismatch(name: bytes, head: bytes) -> bool:
    """True when the extension names a type with a fixed magic and the content lacks it."""
    accepted = _MAGIC.get(extension(name))
    return accepted is not None and len(head) >= 4 and not head.startswith(accepted)


def is_ransom_note(name: bytes) -> bool:
    low = name.lower()
    if extension(low) not in (b"txt", b"html", b"htm", b"hta", b"url", b"rtf", b""):
        return False
    has_word = any(w in low for w in _NOTE_WORDS)
    return has_word and any(h in low for h in _NOTE_HINTS) and (low.split(b".")[0] != b"readme")


def renamed_from(name: bytes, deleted: dict[bytes, Node]) -> Node | None:
    """The deleted node ``name`` looks renamed from: ``a.docx`` -> ``a.docx.locked`` or ``a.locked``."""
    dot = name.rfind(b".")
    while dot > 0:
        stem = name[:dot]
        if stem in deleted:
            return deleted[stem]
        dot = name.rfind(b".", 0, dot)
    base = name.split(b".", 1)[0]
    for old_name, node in deleted.items():
        if old_name.split(b".", 1)[0] == base and extension(old_name) != extension(name):
            return node
    return None


@dataclass
class ChangeFacts:
    """Counts of suspicious changes against the parent snapshot, with where and examples."""

    has_parent: bool = False
    files_before: int = 0  # files in the parent's directories that this walk compared
    files_rewritten: int = 0  # existing files whose content changed
    files_renamed: int = 0  # new files that replace a deleted one under a new extension
    files_deleted: int = 0
    entropy_jumps: int = 0  # rewritten or renamed content that went from structured to near random
    high_entropy_unknown: int = 0  # rewritten to near random, the parent's entropy not recorded
    magic_mismatches: int = 0  # a known extension whose content lacks that type's magic
    ransom_notes: int = 0
    new_extensions: Counter[str] = field(default_factory=Counter)
    top_dirs: Counter[str] = field(default_factory=Counter)  # suspicious changes per directory
    examples: list[str] = field(default_factory=list)
    near_random_bits: float = 7.5  # the engine's notion of "near random", for the counts above
    structured_bits: float = 6.5
    _renamed: set[int] = field(default_factory=set, repr=False)  # deleted nodes already matched

    def _note(self, path: bytes, why: str) -> None:
        self.top_dirs[os.fsdecode(os.path.dirname(path)) or "/"] += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(f"{why}: {os.fsdecode(path)}")

    def observe_file(
        self, path: bytes, node: Node, prev: Node | None, head: bytes, renamed: Node | None
    ) -> None:
        """A file whose content was read; ``prev``: its parent node; ``renamed``: the one it replaced."""
        if prev is not None and prev.sha256 == node.sha256:
            return  # read again (touched, metadata changed), content the same
        now = entropy_bits(node.entropy)
        if prev is not None:
            self.files_rewritten += 1
        if renamed is not None and id(renamed) not in self._renamed:
            self._renamed.add(id(renamed))  # a rename, not a deletion (observe_dir counted it)
            self.files_deleted -= 1
            self.top_dirs[os.fsdecode(os.path.dirname(path)) or "/"] -= 1
        if renamed is not None:
            self.files_renamed += 1
            self.new_extensions["." + os.fsdecode(extension(node.name))] += 1
            self._note(path, "renamed")
        before = prev if prev is not None else renamed
        if before is not None and now is not None and now >= self.near_random_bits:
            was = entropy_bits(before.entropy)
            if was is None:
                self.high_entropy_unknown += 1
            elif was <= self.structured_bits:
                self.entropy_jumps += 1
                self._note(path, f"entropy {was:.1f}->{now:.1f} bits/byte")
        if magic_mismatch(node.name, head):
            self.magic_mismatches += 1
            self._note(path, "content does not match its extension")
        if prev is None and renamed is None and is_ransom_note(node.name):
            self.ransom_notes += 1
            self._note(path, "ransom note name")

    def observe_dir(self, path: bytes, deleted: dict[bytes, Node]) -> None:
        """A fully listed directory whose ``deleted`` files were in the parent and are gone."""
        self.files_deleted += len(deleted)
        self.top_dirs[os.fsdecode(path) or "/"] += len(deleted)

    def counts(self) -> dict[str, int]:
        return {
            "files_before": self.files_before,
            "files_rewritten": self.files_rewritten,
            "files_renamed": self.files_renamed,
            "files_deleted": self.files_deleted,
            "entropy_jumps": self.entropy_jumps,
            "high_entropy_unknown": self.high_entropy_unknown,
            "magic_mismatches": self.magic_mismatches,
            "ransom_notes": self.ransom_notes,
        }
