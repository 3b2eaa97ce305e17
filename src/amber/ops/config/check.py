"""Typed reads from parsed TOML that fail with ``file:line: key.path: problem``."""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any, NoReturn

from amber.errors import ConfigError
from amber.ops.config import tomlpos
from amber.ops.schedule.calendar import parse_calendar

KeyPath = tuple[str | int, ...]

RETENTION_DURATION = re.compile(r"(\d+[yYmMwWdDhH])+")
SUBSET = re.compile(r"\d+(\.\d+)?%|\d+/\d+")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)?", re.IGNORECASE)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d|w)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def expand(path: str) -> str:
    return os.path.expandvars(os.path.expanduser(path))


def parse_size(text: str) -> int | None:
    """'512M', '1G', '1GiB', '4096' -> bytes (powers of 1024, as systemd reads them)."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        return None
    return int(float(match.group(1)) * 1024 ** " KMGT".index(match.group(2).upper() or " "))


def parse_duration(text: str) -> float | None:
    """'90s', '30m', '1h30m', '2d', '1w' -> seconds."""
    compact = text.replace(" ", "").lower()
    if not compact or not re.fullmatch(rf"({_DURATION.pattern})+", compact):
        return None
    return sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(compact))


def _kind(value: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)  # fmt: skip


class Reader:
    """Knows the source text, so every failure can name its line."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.lines = tomlpos.key_lines(text)

    def fail(self, path: KeyPath, problem: str) -> NoReturn:
        line = tomlpos.line_of(self.lines, path)
        where = f"{self.source}:{line}" if line is not None else self.source
        raise ConfigError(f"{where}: {tomlpos.dotted(path)}: {problem}")

    def only(self, t: Mapping[str, Any], path: KeyPath, allowed: Collection[str]) -> None:
        for key in t:
            if key not in allowed:
                self.fail((*path, key), f"unknown key (expected one of {', '.join(sorted(allowed))})")

    def _get(self, t: Mapping[str, Any], path: KeyPath, key: str, required: bool) -> Any:
        if key not in t:
            if required:
                self.fail(path, f"missing key '{key}'")
            return None
        return t[key]

    def table(self, t: Mapping[str, Any], path: KeyPath, present: bool = False) -> Any:
        """The sub-table at ``path[-1]`` ({} when absent, or None when ``present``)."""
        key = str(path[-1])
        value = t.get(key)
        if value is None:
            return None if present else {}
        if not isinstance(value, dict):
            self.fail(path, f"expected a table, got {_kind(value)}")
        return value

    def tables(self, t: Mapping[str, Any], path: KeyPath) -> Iterable[tuple[str, dict[str, Any]]]:
        """Named sub-tables, e.g. every ``[jobs.NAME]``."""
        outer = self.table(t, path)
        for name, value in outer.items():
            if not isinstance(value, dict):
                self.fail((*path, name), f"expected a table [{tomlpos.dotted((*path, name))}], "
                          f"got {_kind(value)}")  # fmt: skip
            yield name, value

    def table_list(self, t: Mapping[str, Any], path: KeyPath) -> list[dict[str, Any]]:
        value = t.get(str(path[-1]), [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.fail(path, f"expected an array of tables [[{tomlpos.dotted(path)}]]")
        return value

    def string(self, t: Mapping[str, Any], path: KeyPath, key: str, required: bool = False) -> str | None:
        value = self._get(t, path, key, required)
        if value is not None and not isinstance(value, str):
            self.fail((*path, key), f"expected a string, got {_kind(value)}")
        if required and not value:
            self.fail((*path, key), "must not be empty")
        return value

    def strings(self, t: Mapping[str, Any], path: KeyPath, key: str) -> tuple[str, ...]:
        value = self._get(t, path, key, False)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail((*path, key), "expected a list of strings")
        return tuple(value)

    def boolean(self, t: Mapping[str, Any], path: KeyPath, key: str, default: bool = False) -> bool:
        value = self._get(t, path, key, False)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail((*path, key), f"expected true or false, got {_kind(value)}")
        return value

    def integer(
        self, t: Mapping[str, Any], path: KeyPath, key: str, low: int | None = None,
        high: int | None = None,
    ) -> int | None:  # fmt: skip
        value = self._get(t, path, key, False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail((*path, key), f"expected an integer, got {_kind(value)}")
        self._range(path, key, value, low, high)
        return value

    def number(
        self, t: Mapping[str, Any], path: KeyPath, key: str, low: float | None = None,
        high: float | None = None,
    ) -> float | None:  # fmt: skip
        value = self._get(t, path, key, False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail((*path, key), f"expected a number, got {_kind(value)}")
        self._range(path, key, value, low, high)
        return float(value)

    def _range(self, path: KeyPath, key: str, value: float, low: float | None, high: float | None) -> None:
        if low is not None and value < low:
            self.fail((*path, key), f"must be at least {low}, got {value}")
        if high is not None and value > high:
            self.fail((*path, key), f"must be at most {high}, got {value}")

    def choice(self, t: Mapping[str, Any], path: KeyPath, key: str, choices: Collection[str]) -> str | None:
        value = self.string(t, path, key)
        if value is not None and value not in choices:
            self.fail((*path, key), f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    def known(self, path: KeyPath, name: str, defined: Mapping[str, object], what: str) -> None:
        if name not in defined:
            known = ", ".join(sorted(defined)) or "none defined"
            self.fail(path, f"no {what} named {name!r} ({known})")

    def calendar(self, t: Mapping[str, Any], path: KeyPath, key: str) -> str | None:
        value = self.string(t, path, key)
        if value is not None:
            try:
                parse_calendar(value)
            except ValueError as exc:
                self.fail((*path, key), f"{exc} (expected systemd OnCalendar syntax)")
        return value
