"""amber.events: one sink per operation fans progress, run events and notices out to its subscribers."""

from __future__ import annotations

import threading

import pytest

from amber.engine.progress import is_silent
from amber.events import Events, NullEvents, RunEvent, Subscriber


class Log(Subscriber):
    def __init__(self) -> None:
        self.seen: list[tuple[str, object]] = []

    def notice(self, kind: str, message: str) -> None:
        self.seen.append(("notice", (kind, message)))

    def file_done(self, path: bytes, size: int, status: str) -> None:
        self.seen.append(("file", path))

    def bytes_done(self, n: int) -> None:
        self.seen.append(("bytes", n))

    def error(self, path: bytes, message: str) -> None:
        self.seen.append(("error", path))

    def run_event(self, event: RunEvent) -> None:
        self.seen.append(("run", event.kind))


class Broken(Subscriber):
    def bytes_done(self, n: int) -> None:
        raise ValueError("display bug")

    def run_event(self, event: RunEvent) -> None:
        raise RuntimeError("smtp bug")


def send_all(events: Events) -> None:
    events.notice("retry", "again")
    events.file_done(b"/a", 3, "new")
    events.bytes_done(3)
    events.error(b"/b", "permission denied")
    events.run_event(RunEvent("start", "home"))


ALL = [("notice", ("retry", "again")), ("file", b"/a"), ("bytes", 3), ("error", b"/b"), ("run", "start")]


def test_every_kind_reaches_every_subscriber_until_it_unsubscribes() -> None:
    events = Events()
    first, second = Log(), Log()
    events.subscribe(first)
    unsubscribe = events.subscribe(second)
    send_all(events)
    assert first.seen == ALL and second.seen == ALL
    unsubscribe()
    send_all(events)
    assert first.seen == ALL + ALL and second.seen == ALL


@pytest.mark.parametrize(("where", "parent_hears", "sibling_hears"), [
    ("child", True, False),  # a job's events reach the caller, not the other job
    ("parent", False, False),  # the caller's own events are not a job's
])  # fmt: skip
def test_a_child_forwards_to_its_parent_only(where: str, parent_hears: bool, sibling_hears: bool) -> None:
    parent = Events()
    child, sibling = parent.child(), parent.child()
    logs = {name: Log() for name in ("parent", "child", "sibling")}
    for name, sink in (("parent", parent), ("child", child), ("sibling", sibling)):
        sink.subscribe(logs[name])
    send_all(child if where == "child" else parent)
    assert (logs["parent"].seen == ALL) is (parent_hears or where == "parent")
    assert (logs["child"].seen == ALL) is (where == "child")
    assert (logs["sibling"].seen == ALL) is sibling_hears


def test_a_failing_subscriber_becomes_a_notice_and_the_others_still_hear() -> None:
    parent = Events()
    events = parent.child()
    log, above = Log(), Log()
    events.subscribe(Broken())
    events.subscribe(log)
    parent.subscribe(above)
    events.bytes_done(7)  # does not raise
    events.run_event(RunEvent("failure", "home"))
    assert ("bytes", 7) in log.seen and ("run", "failure") in log.seen
    notices = [m for kind, m in log.seen if kind == "notice"]
    assert notices == [("subscriber", "Broken: ValueError: display bug"),
                       ("subscriber", "Broken: RuntimeError: smtp bug")]  # fmt: skip
    assert [m for kind, m in above.seen if kind == "notice"] == notices  # the caller hears it too


def test_subscribing_while_workers_report_loses_nothing_already_subscribed() -> None:
    events = Events()
    total = Log()
    events.subscribe(total)

    def work() -> None:
        for _ in range(2000):
            events.bytes_done(1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    unsubscribes = [events.subscribe(Subscriber()) for _ in range(200)]
    for u in unsubscribes:
        u()
    for t in threads:
        t.join()
    assert sum(n for kind, n in total.seen if kind == "bytes") == 8000  # type: ignore[misc]


def test_a_sink_is_silent_while_nobody_hears_it() -> None:
    parent = Events()
    child = parent.child()
    assert parent.silent and child.silent and NullEvents().silent
    assert is_silent(child) and not is_silent(Log())
    unsubscribe = parent.subscribe(Log())
    assert not parent.silent and not child.silent  # the child's events reach the parent's subscriber
    unsubscribe()
    child.subscribe(Log())
    assert not child.silent and parent.silent
