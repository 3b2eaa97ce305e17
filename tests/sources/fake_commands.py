"""A recorded command contract: the exact argv a provider must issue, in order, with canned outputs.

A step may carry an effect: what the real command would have done to the
files a test can see (a ``mount`` that shows a filesystem's content), run when
the command is replayed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from amber.sources.runner import Completed

Effect = Callable[[], None]
Step = tuple[Sequence[str], Completed] | tuple[Sequence[str], Completed, Effect]


class Contract:
    """Replays ``steps`` ((argv, Completed[, effect]) tuples) and fails on any other command."""

    def __init__(self, steps: Sequence[Step]) -> None:
        self.steps = [(list(s[0]), s[1], s[2] if len(s) == 3 else None) for s in steps]
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> Completed:
        self.calls.append(list(argv))
        assert self.steps, f"unexpected command after the contract ended: {list(argv)}"
        expected, done, effect = self.steps.pop(0)
        assert list(argv) == expected, f"expected {expected}, got {list(argv)}"
        if effect is not None:
            effect()
        return done

    def finished(self) -> bool:
        return not self.steps


def ok(stdout: str = "") -> Completed:
    return Completed(0, stdout, "")


def fails(code: int, stderr: str) -> Completed:
    return Completed(code, "", stderr)
