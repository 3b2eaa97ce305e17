"""One error line per bad tree or walk limit met while listing; the command fails at its end."""

from __future__ import annotations

import os

from amber.cli.output import err_console, plain, show_path
from amber.errors import AmberError, IntegrityError

_SHOWN_PATH = 120  # characters kept at each end of a long path in an error line


class WalkProblems:
    """An error sink for tree walks (design §9): prints each problem, counts them."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, path: bytes, exc: AmberError) -> None:
        self.count += 1
        where = show_path(path) or "/"
        if len(where) > 2 * _SHOWN_PATH:  # a path near MAX_PATH: its ends say enough
            where = f"{where[:_SHOWN_PATH]}...{where[-_SHOWN_PATH:]}"
        err_console.print(f"[red]error:[/] {plain(os.fsdecode(where))}: {plain(str(exc))}", soft_wrap=True)

    def in_snapshot(self, sid: str, path: bytes, exc: AmberError) -> None:
        self(f"snapshot {sid[:8]}: ".encode() + (path or b"/"), exc)

    def raise_if_any(self) -> None:
        if self.count:
            raise IntegrityError(
                f"{self.count} part(s) of the snapshots could not be read or were beyond the walk limits; "
                "the rest was listed (run check)"
            )
