"""A pure subset of systemd's OnCalendar syntax, for validation and the built-in daemon.

Supported: the shorthands (minutely, hourly, daily, weekly, monthly, quarterly,
semiannually, yearly/annually) and ``[WEEKDAYS] [[YYYY-]MM-DD] [HH:MM[:SS]]``
where each number field is ``*``, ``N``, ``N..M``, ``A/step`` or a comma list
of those, and weekdays are names, ``Mon..Fri`` ranges or lists. Times are local.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

SHORTHANDS = {
    "minutely": "*-*-* *:*:00",
    "hourly": "*-*-* *:00:00",
    "daily": "*-*-* 00:00:00",
    "weekly": "Mon *-*-* 00:00:00",
    "monthly": "*-*-01 00:00:00",
    "quarterly": "*-01,04,07,10-01 00:00:00",
    "semiannually": "*-01,07-01 00:00:00",
    "yearly": "*-01-01 00:00:00",
    "annually": "*-01-01 00:00:00",
}
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_SEARCH_DAYS = 366 * 8  # covers Feb 29 and rare weekday/date combinations


@dataclass(frozen=True)
class Calendar:
    text: str
    weekdays: frozenset[int]  # 0 = Monday
    years: frozenset[int] | None  # None = any year
    months: frozenset[int]
    days: frozenset[int]
    hours: tuple[int, ...]
    minutes: tuple[int, ...]
    seconds: tuple[int, ...]


def _values(text: str, low: int, high: int, what: str) -> set[int]:
    out: set[int] = set()
    for item in text.split(","):
        match = re.fullmatch(r"(\*|\d+)(?:\.\.(\d+))?(?:/(\d+))?", item)
        if not match:
            raise ValueError(f"bad {what} {item!r}")
        start_s, end_s, step_s = match.groups()
        start = low if start_s == "*" else int(start_s)
        end = int(end_s) if end_s else (high if start_s == "*" or step_s else start)
        step = int(step_s) if step_s else 1
        if step < 1 or not low <= start <= end <= high:
            raise ValueError(f"{what} {item!r} is outside {low}..{high}")
        out.update(range(start, end + 1, step))
    return out


def _weekday(name: str) -> int:
    lowered = name.lower()
    for names in (_DAYS, _FULL_DAYS):
        if lowered in names:
            return names.index(lowered)
    raise ValueError(f"bad weekday {name!r}")


def _weekdays(text: str) -> set[int]:
    out: set[int] = set()
    for item in text.split(","):
        first, sep, last = item.partition("..")
        a = _weekday(first)
        b = _weekday(last) if sep else a
        out.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return out


def parse_calendar(text: str) -> Calendar:
    """Parse an OnCalendar expression; ValueError names what is wrong."""
    spec = " ".join(text.split())
    expanded = SHORTHANDS.get(spec.lower(), spec)
    words = expanded.split(" ")
    if not spec or len(words) > 3:
        raise ValueError(f"cannot parse calendar expression {text!r}")
    weekdays = set(range(7))
    if words and re.match(r"[A-Za-z]", words[0]):
        weekdays = _weekdays(words.pop(0))
    years: set[int] | None = None
    months, days = set(range(1, 13)), set(range(1, 32))
    if words and "-" in words[0]:
        parts = words.pop(0).split("-")
        if len(parts) == 3:
            years = None if parts[0] == "*" else _values(parts[0], 1970, 2199, "year")
            parts = parts[1:]
        if len(parts) != 2:
            raise ValueError(f"bad date in {text!r}")
        months, days = _values(parts[0], 1, 12, "month"), _values(parts[1], 1, 31, "day")
    hours, minutes, seconds = {0}, {0}, {0}
    if words:
        parts = words.pop(0).split(":")
        if len(parts) not in (2, 3):
            raise ValueError(f"bad time in {text!r}")
        hours, minutes = _values(parts[0], 0, 23, "hour"), _values(parts[1], 0, 59, "minute")
        seconds = _values(parts[2], 0, 59, "second") if len(parts) == 3 else {0}
    if words:
        raise ValueError(f"cannot parse calendar expression {text!r}")
    return Calendar(
        text, frozenset(weekdays), frozenset(years) if years is not None else None,
        frozenset(months), frozenset(days), tuple(sorted(hours)), tuple(sorted(minutes)),
        tuple(sorted(seconds)),
    )  # fmt: skip


def _day_matches(cal: Calendar, day: dt.date) -> bool:
    return (
        day.weekday() in cal.weekdays
        and day.month in cal.months
        and day.day in cal.days
        and (cal.years is None or day.year in cal.years)
    )


def _first_time(cal: Calendar, after: dt.time | None) -> dt.time | None:
    """The first matching time of day strictly after ``after`` (or the first of the day)."""
    for h in cal.hours:
        if after is not None and h < after.hour:
            continue
        for m in cal.minutes:
            if after is not None and (h, m) < (after.hour, after.minute):
                continue
            for s in cal.seconds:
                if after is None or (h, m, s) > (after.hour, after.minute, after.second):
                    return dt.time(h, m, s)
    return None


def next_after(cal: Calendar, after: dt.datetime) -> dt.datetime | None:
    """The first time matching ``cal`` strictly after ``after`` (None if there is none)."""
    day = after.date()
    for offset in range(_SEARCH_DAYS):
        current = day + dt.timedelta(days=offset)
        if not _day_matches(cal, current):
            continue
        at = _first_time(cal, after.time() if offset == 0 else None)
        if at is not None:
            return dt.datetime.combine(current, at, after.tzinfo)
    return None


def is_due(cal: Calendar, last_run: dt.datetime | None, now: dt.datetime) -> bool:
    """Persistent semantics: due when an occurrence fell after the last run, up to now."""
    if last_run is None:
        return True
    upcoming = next_after(cal, last_run)
    return upcoming is not None and upcoming <= now
