"""How snapshot providers run vendor commands (btrfs, zfs, lvcreate, mount ...).

Every provider command goes through one :class:`CommandRunner`, so a test can
record the exact argv a provider issues and replay canned outputs (the ZFS and
LVM command contracts: these machines have no ZFS module and no device-mapper).
A failing command becomes a :class:`~amber.errors.LocalSnapshotError` here, at
the point where the vendor tool enters amber.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from amber.childenv import child_env
from amber.errors import LocalSnapshotError


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str = ""
    stderr: str = ""


class CommandRunner(Protocol):
    def __call__(self, argv: Sequence[str]) -> Completed:
        """Run ``argv`` (no shell) to completion; never raises for a non-zero exit."""
        ...


class SystemRunner:
    """Runs commands on this machine."""

    def __init__(self, timeout: float = 600.0) -> None:
        self.timeout = timeout

    def __call__(self, argv: Sequence[str]) -> Completed:
        try:
            proc = subprocess.run(
                list(argv), capture_output=True, text=True, env=child_env(), timeout=self.timeout, check=False
            )
        except FileNotFoundError as exc:
            raise LocalSnapshotError(f"{argv[0]} is not installed (needed for filesystem snapshots)") from exc
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise LocalSnapshotError(f"{argv[0]} could not run: {exc}") from exc
        return Completed(proc.returncode, proc.stdout, proc.stderr)


def failure(argv: Sequence[str], done: Completed) -> str:
    """The command and its first error line."""
    lines = [ln.strip() for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
    why = lines[0] if lines else "no output"
    return f"{' '.join(argv[:3])} failed (exit {done.returncode}): {why}"


def checked(run: CommandRunner, argv: Sequence[str]) -> str:
    """Run ``argv``; its stdout, or LocalSnapshotError naming the command and its first error line."""
    done = run(argv)
    if done.returncode != 0:
        raise LocalSnapshotError(failure(argv, done))
    return done.stdout


Undoable = tuple[Sequence[str], Sequence[str] | None]  # a command and the one that reverses it


def run_undoable(run: CommandRunner, steps: Sequence[Undoable]) -> tuple[str, str]:
    """Run ``steps``; when one fails, reverse the done ones, last first.

    ("", "") when all ran; else (what failed, the reversing command that failed
    too, or "" when everything was put back).
    """
    undo: list[Sequence[str]] = []
    for argv, back in steps:
        done = run(argv)
        if done.returncode != 0:
            stuck = next((" ".join(b) for b in reversed(undo) if run(b).returncode != 0), "")
            return failure(argv, done), stuck
        if back is not None:
            undo.append(back)
    return "", ""
