"""OnCalendar subset: parsing and next-elapse, cross-checked with systemd-analyze when present."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess

import pytest

from amber.ops.schedule.calendar import is_due, next_after, parse_calendar

T0 = dt.datetime(2024, 2, 28, 13, 30, 15)  # a Wednesday, before a leap day

NEXT = [
    ("daily", dt.datetime(2024, 2, 29, 0, 0)),
    ("hourly", dt.datetime(2024, 2, 28, 14, 0)),
    ("minutely", dt.datetime(2024, 2, 28, 13, 31)),
    ("weekly", dt.datetime(2024, 3, 4, 0, 0)),  # next Monday
    ("monthly", dt.datetime(2024, 3, 1, 0, 0)),
    ("yearly", dt.datetime(2025, 1, 1, 0, 0)),
    ("quarterly", dt.datetime(2024, 4, 1, 0, 0)),
    ("*-*-* 02:00:00", dt.datetime(2024, 2, 29, 2, 0)),
    ("*-*-* 13:30:15", dt.datetime(2024, 2, 29, 13, 30, 15)),  # strictly after
    ("*-*-* 13:30:16", dt.datetime(2024, 2, 28, 13, 30, 16)),
    ("14:05", dt.datetime(2024, 2, 28, 14, 5)),
    ("Mon *-*-* 02:00", dt.datetime(2024, 3, 4, 2, 0)),
    ("Mon..Fri 08:00", dt.datetime(2024, 2, 29, 8, 0)),
    ("Sat,Sun 10:00", dt.datetime(2024, 3, 2, 10, 0)),
    ("*-02-29 12:00", dt.datetime(2024, 2, 29, 12, 0)),
    ("*-*-31 00:00", dt.datetime(2024, 3, 31, 0, 0)),
    ("*:0/15", dt.datetime(2024, 2, 28, 13, 45)),
    ("*-*-1,15 06:00", dt.datetime(2024, 3, 1, 6, 0)),
    ("2025-06-01 00:00", dt.datetime(2025, 6, 1, 0, 0)),
    ("Fri *-*-13 00:00", dt.datetime(2024, 9, 13, 0, 0)),
    ("*-*-* 0..2:00", dt.datetime(2024, 2, 29, 0, 0)),
]


@pytest.mark.parametrize(("spec", "expected"), NEXT)
def test_next_after(spec: str, expected: dt.datetime) -> None:
    assert next_after(parse_calendar(spec), T0) == expected


@pytest.mark.parametrize("bad", ["", "at two", "*-*-* 25:00", "*-13-01", "Funday 10:00", "*-*-* 1:2:3:4",
                                 "1 2 3 4", "*-*-* 10:61", "5..2:00"])  # fmt: skip
def test_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_calendar(bad)


def test_persistent_catch_up() -> None:
    cal = parse_calendar("*-*-* 02:00:00")
    last = dt.datetime(2024, 1, 1, 2, 0, 5)
    assert not is_due(cal, last, dt.datetime(2024, 1, 2, 1, 59))
    assert is_due(cal, last, dt.datetime(2024, 1, 2, 2, 0))
    assert is_due(cal, last, dt.datetime(2024, 1, 9, 9, 0))  # a week offline: due (once)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize("spec", [s for s, _ in NEXT])
def test_agrees_with_systemd(spec: str) -> None:
    proc = subprocess.run(
        ["systemd-analyze", "calendar", "--iterations=3", "--base-time=2024-02-28 13:30:15", spec],
        capture_output=True, text=True, env={"TZ": "UTC", "PATH": "/usr/bin:/bin"}, check=False,
    )  # fmt: skip
    if proc.returncode != 0 and "base-time" in proc.stderr:
        pytest.skip("systemd-analyze too old for --base-time")
    assert proc.returncode == 0, proc.stderr
    theirs = [line.split(":", 1)[1].strip() for line in proc.stdout.splitlines()
              if line.strip().startswith(("Next elapse:", "Iter. #"))]  # fmt: skip
    ours, at = [], T0
    for _ in range(3):
        nxt = next_after(parse_calendar(spec), at)
        if nxt is None:
            break
        ours.append(nxt.strftime("%a %Y-%m-%d %H:%M:%S UTC"))
        at = nxt
    assert theirs == ours
