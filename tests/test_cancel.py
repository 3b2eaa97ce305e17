"""The cancel signal: first reason wins, children follow parents, callbacks unblock reads."""

from __future__ import annotations

import threading

import pytest

from amber.cancel import CancelToken
from amber.errors import AmberError, HungUp, Interrupted, LeaseLost, Terminated


def test_first_reason_wins_and_each_check_raises_a_fresh_copy() -> None:
    token = CancelToken()
    token.check()  # not cancelled: a no-op
    token.cancel(Terminated())
    token.cancel(Interrupted())
    errors = []
    for _ in range(2):
        with pytest.raises(Terminated) as caught:
            token.check()
        errors.append(caught.value)
    assert errors[0] is not errors[1] and errors[0].exit_code == 143
    assert isinstance(token.reason, Terminated)


@pytest.mark.parametrize(("error", "code"), [(Interrupted(), 130), (Terminated(), 143), (HungUp(), 129),
                                             (LeaseLost(), 31)])  # fmt: skip
def test_exit_codes(error: AmberError, code: int) -> None:
    assert error.exit_code == code


def test_a_child_stops_with_its_parent_not_the_other_way_round() -> None:
    daemon = CancelToken()
    job = daemon.child()
    job.cancel(LeaseLost("lease"))
    assert job.cancelled and not daemon.cancelled
    other = daemon.child()
    daemon.cancel(Terminated())
    assert other.cancelled and isinstance(other.reason, Terminated)
    assert isinstance(job.reason, LeaseLost)  # already cancelled: keeps its own reason
    assert daemon.child().cancelled  # a child of a cancelled token starts cancelled


def test_watching_a_child_marks_its_parents() -> None:
    """A signal handler stops an unwatched operation at once (no safe point to wait for)."""
    cli = CancelToken()
    job = cli.child()
    assert not cli.watched
    assert job.watch() is job
    assert job.watched and cli.watched


def test_any_of_two_tokens() -> None:
    a, b = CancelToken(), CancelToken()
    assert CancelToken.any_of(a, a) is a
    both = CancelToken.any_of(a, b)
    b.cancel(LeaseLost("destination lease"))
    assert both.cancelled and not a.cancelled


def test_callbacks_run_once_and_at_once_when_already_cancelled() -> None:
    token = CancelToken()
    calls: list[str] = []
    token.on_cancel(lambda: calls.append("first"))
    token.cancel(Interrupted())
    token.cancel(Terminated())
    token.on_cancel(lambda: calls.append("late"))
    assert calls == ["first", "late"]


def test_wait_ends_when_cancelled_from_another_thread() -> None:
    token = CancelToken()
    threading.Timer(0.05, token.cancel, args=(Interrupted(),)).start()
    assert token.wait(10)
