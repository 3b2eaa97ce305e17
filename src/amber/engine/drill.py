"""Restore drills: restore a sample of files (or everything) and check each against its SHA-256.

Sampling is pure and seeded, so a failing drill can be repeated exactly
(``--seed``). Sampled files are restored flat, one numbered file each, into a
scratch directory; the whole-snapshot mode restores the tree as it was. Every
restored file is then read back and compared with the SHA-256 its node
recorded at backup time, independently of the restorer's own checks.
"""

from __future__ import annotations

import hashlib
import os
import random
import stat
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import msgspec

from amber.engine.restore_fs import open_beneath
from amber.engine.restorer import BlobSource, RestoreOptions, Restorer
from amber.engine.treewalk import TreeLoader, walk
from amber.errors import AmberError
from amber.repository import Node


@dataclass(frozen=True)
class SampledFile:
    path: bytes  # path in the snapshot
    node: Node


def sample(
    files: Sequence[SampledFile], count: int = 0, bytes_percent: float = 0.0, seed: int | None = None
) -> list[SampledFile]:
    """``count`` random files, or random files until ``bytes_percent`` of the bytes are covered.

    With both, whichever selects more wins. Empty files are only drawn when
    there is nothing else.
    """
    rng = random.Random(seed)
    pool = [f for f in files if f.node.size > 0] or list(files)
    order = rng.sample(pool, len(pool))
    chosen = order[: max(0, count)]
    if bytes_percent > 0:
        goal = sum(f.node.size for f in pool) * min(bytes_percent, 100.0) / 100.0
        covered, by_bytes = 0, list[SampledFile]()
        for f in order:
            if covered >= goal and by_bytes:
                break
            by_bytes.append(f)
            covered += f.node.size
        if len(by_bytes) > len(chosen):
            chosen = by_bytes
    return chosen


def regular_files(load_tree: TreeLoader, root: bytes, errors: list[str] | None = None) -> list[SampledFile]:
    """Every regular file under ``root``. With ``errors``, a bad tree or a walk limit
    adds "path: why" there and the rest is still listed; without, it is raised."""

    def note(path: bytes, exc: AmberError) -> None:
        assert errors is not None
        errors.append(f"{os.fsdecode(path) or '/'}: {exc.message}")

    files = walk(load_tree, root, on_error=None if errors is None else note, match=_is_file)
    return [SampledFile(path, node) for path, node in files]


def _is_file(_path: bytes, node: Node) -> bool:
    return node.type == "file"


@dataclass
class DrillOutcome:
    files: int = 0  # files checked
    bytes: int = 0  # bytes restored and checked
    seconds: float = 0.0  # restore plus verification
    failures: list[str] = field(default_factory=list)  # "path: why"
    unverifiable: int = 0  # files without a recorded SHA-256 (old snapshots)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def throughput(self) -> float:
        """Bytes per second, restore and verify together."""
        return self.bytes / self.seconds if self.seconds > 0 else 0.0


def restore_sample(
    load_tree: TreeLoader, blobs: BlobSource, chosen: Sequence[SampledFile], target: str
) -> DrillOutcome:  # fmt: skip
    """Restore ``chosen`` flat under ``target`` (as 000000, 000001, ...) and verify each."""
    started = time.monotonic()
    names = [b"%06d" % i for i in range(len(chosen))]
    items: Iterator[tuple[bytes, Node]] = iter(
        (b"/" + name, _stand_alone(f.node, name)) for name, f in zip(names, chosen, strict=True)
    )  # fmt: skip
    result = Restorer(load_tree, blobs, RestoreOptions()).restore(items, os.fsencode(target))
    outcome = DrillOutcome()
    problems = {e.split(": ", 1)[0]: e.split(": ", 1)[-1] for e in result.errors}
    for name, f in zip(names, chosen, strict=True):
        restored = os.fsdecode(os.fsencode(target) + b"/" + name)
        why = problems.pop(restored, "") or _check(target, b"/" + name, f.node, outcome)
        if why:
            outcome.failures.append(f"{os.fsdecode(f.path)}: {why}")
        outcome.files += 1
        outcome.bytes += f.node.size
    outcome.failures.extend(f"{path}: {why}" for path, why in problems.items())
    outcome.seconds = time.monotonic() - started
    return outcome


def restore_all(load_tree: TreeLoader, blobs: BlobSource, root: bytes, target: str) -> DrillOutcome:
    """Restore the whole tree under ``target`` and verify every regular file.

    Anything the restore skipped (a bad name, an entry it could not make) is a
    failure. Files are read back through ``open_beneath``: no symlink followed.
    """
    started = time.monotonic()
    result = Restorer(load_tree, blobs, RestoreOptions()).restore_tree(root, os.fsencode(target))
    outcome = DrillOutcome()
    outcome.failures.extend(result.errors)
    failed = {e.split(": ", 1)[0] for e in result.errors}
    seen: set[tuple[int, int]] = set()
    for path, node in _readable_files(load_tree, root, outcome):
        if node.type != "file" or _under_failed(os.fsencode(target), path, failed):
            continue  # reported by the restore already
        key = (node.device, node.inode)
        if node.links > 1 and key in seen:
            continue  # a hard link to a file already checked
        seen.add(key)
        why = _check(target, path, node, outcome)
        if why:
            outcome.failures.append(f"{os.fsdecode(path)}: {why}")
        outcome.files += 1
        outcome.bytes += node.size
    outcome.seconds = time.monotonic() - started
    return outcome


def _readable_files(
    load_tree: TreeLoader, root: bytes, outcome: DrillOutcome
) -> Iterator[tuple[bytes, Node]]:  # fmt: skip
    """The snapshot's entries; a tree that cannot be read (reported by the restore) ends the listing."""
    try:
        yield from walk(load_tree, root)
    except AmberError:
        if not outcome.failures:
            raise


def _under_failed(target: bytes, path: bytes, failed: set[str]) -> bool:
    """``path`` or a directory above it is among the restore's errors."""
    end = len(path)
    while end > 0:
        if os.fsdecode(target + path[:end]) in failed:
            return True
        end = path.rfind(b"/", 0, end)
    return False


def _stand_alone(node: Node, name: bytes) -> Node:
    """The node as a stand-alone file named ``name``: sampled hard links are restored as copies."""
    return msgspec.structs.replace(node, name=name, links=1)


def _check(target: str, path: bytes, node: Node, outcome: DrillOutcome) -> str:
    """Empty when the file at ``path`` under ``target`` has the node's size and SHA-256, else why not."""
    digest = hashlib.sha256()
    size = 0
    try:
        fd = open_beneath(os.fsencode(target), path)
    except FileNotFoundError:
        return "not restored"
    except OSError as exc:
        return f"cannot read restored file: {exc.strerror}"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "not restored as a regular file"
        while chunk := os.pread(fd, 4 << 20, size):
            digest.update(chunk)
            size += len(chunk)
    except OSError as exc:
        return f"cannot read restored file: {exc.strerror}"
    finally:
        os.close(fd)
    if size != node.size:
        return f"restored {size} bytes, expected {node.size}"
    if not node.sha256:
        outcome.unverifiable += 1
        return ""
    if digest.digest() != node.sha256:
        return "SHA-256 mismatch"
    return ""
