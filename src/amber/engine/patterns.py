"""Include and exclude patterns, with restic's meaning.

* A pattern without ``/`` matches any single path component (``*.tmp``, ``.cache``).
* A pattern with ``/`` matches the whole absolute path (``/home/*/.cache``);
  if it does not start with ``/`` it may match at any depth.
* ``**`` matches across directories. A matched directory covers its whole subtree.

With ``exclude_caches``, a directory holding a ``CACHEDIR.TAG`` that starts with
the signature of the Cache Directory Tagging Specification
(https://bford.info/cachedir/) is excluded too, as restic's ``--exclude-caches``
does. That costs one failed ``open`` per entry, so it is off unless asked for.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path


def _translate(pattern: str) -> re.Pattern[bytes]:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile(os.fsencode("".join(out)), re.DOTALL)


CACHEDIR_TAG = b"CACHEDIR.TAG"
CACHEDIR_SIGNATURE = b"Signature: 8a477f597d28d172789f06886806bc55"


def is_cache_dir(path: bytes) -> bool:
    """``path`` is a directory tagged as a cache (on a file: ENOTDIR, so False)."""
    try:
        with open(path + b"/" + CACHEDIR_TAG, "rb") as f:
            return f.read(len(CACHEDIR_SIGNATURE)) == CACHEDIR_SIGNATURE
    except OSError:
        return False


class PathMatcher:
    def __init__(self, patterns: Iterable[str], exclude_caches: bool = False) -> None:
        self.patterns = [p for p in (p.strip() for p in patterns) if p and not p.startswith("#")]
        self.exclude_caches = exclude_caches
        self._component: list[re.Pattern[bytes]] = []
        self._full: list[re.Pattern[bytes]] = []
        for p in self.patterns:
            p = p.rstrip("/") or "/"
            if "/" not in p:
                self._component.append(_translate(p))
            elif p.startswith("/"):
                self._full.append(_translate(p))
            else:
                self._full.append(_translate("**/" + p))

    def __bool__(self) -> bool:
        return bool(self.patterns) or self.exclude_caches

    def matches(self, path: bytes, name: bytes) -> bool:
        """The patterns, or with ``exclude_caches`` a tagged cache directory (read in place)."""
        return (
            any(r.fullmatch(name) for r in self._component)
            or any(r.fullmatch(path) for r in self._full)
            or (self.exclude_caches and is_cache_dir(path))
        )

    def test(self, read_path: Callable[[bytes], bytes]) -> Callable[[bytes, bytes], bool] | None:
        """``excluded(path, name)`` for a walk whose recorded paths are read at ``read_path(path)``
        (the patterns match recorded paths; a CACHEDIR.TAG is looked for where it is read);
        None when nothing is excluded."""
        if not self:
            return None
        if not self.exclude_caches:
            return self.matches
        patterns = PathMatcher(self.patterns)
        return lambda path, name: patterns.matches(path, name) or is_cache_dir(read_path(path))


def read_exclude_files(files: Iterable[str]) -> list[str]:
    patterns: list[str] = []
    for f in files:
        patterns.extend(Path(f).read_text().splitlines())
    return patterns
