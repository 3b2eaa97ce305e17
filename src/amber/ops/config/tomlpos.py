"""Line numbers of keys in TOML source text (tomllib reports none).

A pure, forgiving scanner: it follows ``[table]`` and ``[[array]]`` headers and
``key = value`` lines, and maps every key path to the line where it is set.
Paths use strings for keys and ints for positions in arrays of tables, so
``[[notify]]`` number two, key ``url`` is ``("notify", 1, "url")``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

Path = tuple[str | int, ...]

_PART = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_DOTTED = rf"{_PART}(?:\s*\.\s*{_PART})*"
_HEADER = re.compile(rf"^\s*(\[\[?)\s*({_DOTTED})\s*\]\]?")
_KEY = re.compile(rf"^\s*({_DOTTED})\s*=")
_SPLIT = re.compile(_PART)


def _parts(dotted: str) -> list[str]:
    out = []
    for match in _SPLIT.finditer(dotted):
        part = match.group(0)
        if part[:1] in "\"'":
            part = part[1:-1]
        out.append(part)
    return out


def _with_indexes(parts: list[str], arrays: dict[tuple[str, ...], int]) -> list[str | int]:
    """Insert the current element index after every prefix that names an array of tables."""
    out: list[str | int] = []
    for i, part in enumerate(parts):
        out.append(part)
        prefix = tuple(parts[: i + 1])
        if prefix in arrays:
            out.append(arrays[prefix])
    return out


def key_lines(text: str) -> dict[Path, int]:
    """Map each table and key path to its 1-based line number (first occurrence)."""
    lines: dict[Path, int] = {}
    arrays: dict[tuple[str, ...], int] = {}  # array-of-tables name -> current element index
    table: list[str | int] = []
    in_multiline: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if in_multiline:
            if line.count(in_multiline) % 2 == 1:
                in_multiline = None
            continue
        header = _HEADER.match(line)
        if header:
            parts = _parts(header.group(2))
            if header.group(1) == "[[":
                name = tuple(parts)
                arrays[name] = arrays.get(name, -1) + 1
                for nested in [k for k in arrays if len(k) > len(name) and k[: len(name)] == name]:
                    del arrays[nested]  # nested arrays restart inside a new element
            table = _with_indexes(parts, arrays)
            lines.setdefault(tuple(table), number)
            continue
        key = _KEY.match(line)
        if key:
            lines.setdefault((*table, *_parts(key.group(1))), number)
            rest = line[key.end() :]
            for quote in ('"""', "'''"):
                if rest.count(quote) % 2 == 1:
                    in_multiline = quote
    return lines


def line_of(lines: dict[Path, int], path: Sequence[str | int]) -> int | None:
    """The line of ``path``, or of its nearest ancestor that has one."""
    for end in range(len(path), 0, -1):
        found = lines.get(tuple(path[:end]))
        if found is not None:
            return found
    return None


def dotted(path: Sequence[str | int]) -> str:
    """``("notify", 0, "url")`` -> ``notify[0].url``; odd keys are quoted."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else f'"{part}"'
            out += ("." if out else "") + text
    return out
