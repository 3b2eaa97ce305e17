"""A recorded command contract: the exact argv a provider must issue, in order, with canned outputs."""

from __future__ import annotations

from collections.abc import Sequence

from amber.sources.runner import Completed


class Contract:
    """Replays ``steps`` ((argv, Completed) pairs) and fails on any other command."""

    def __init__(self, steps: Sequence[tuple[Sequence[str], Completed]]) -> None:
        self.steps = [(list(argv), done) for argv, done in steps]
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> Completed:
        self.calls.append(list(argv))
        assert self.steps, f"unexpected command after the contract ended: {list(argv)}"
        expected, done = self.steps.pop(0)
        assert list(argv) == expected, f"expected {expected}, got {list(argv)}"
        return done

    def finished(self) -> bool:
        return not self.steps


def ok(stdout: str = "") -> Completed:
    return Completed(0, stdout, "")


def fails(code: int, stderr: str) -> Completed:
    return Completed(code, "", stderr)
