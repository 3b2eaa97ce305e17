"""Mapped ranges: the same bytes as a load, only where the process and every layer allow it."""

from __future__ import annotations

import faulthandler
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from amber.errors import ObjectNotFound
from amber.storage import mapped
from amber.storage.appendonly import AppendOnlyBackend
from amber.storage.base import FileType, Handle
from amber.storage.concurrency import ConcurrencyLimitedBackend
from amber.storage.faults import FaultInjectingBackend, FaultPlan
from amber.storage.local import LocalBackend
from amber.storage.ratelimit import RateLimitedBackend, TokenBucket
from amber.storage.readonly import ReadOnlyBackend
from amber.storage.retry import DeadlineBackend, RetryingBackend, RetryPolicy

PACK = Handle(FileType.PACK, "ab" * 32)
BODY = bytes(range(256)) * 300  # 76,800 bytes: more than one mapping granularity


@pytest.fixture
def local(tmp_path: Path) -> LocalBackend:
    backend = LocalBackend(tmp_path / "repo")
    backend.create()
    backend.save(PACK, BODY)
    return backend


@pytest.fixture
def allowed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(mapped, "_allowed", False)
    mapped.allow_in_this_process()
    yield


class _LoadsRefused(LocalBackend):
    def load(self, handle: Handle, offset: int = 0, length: int | None = None, *, limit: int | None = None
             ) -> bytes:  # fmt: skip
        raise AssertionError("loaded, not mapped")


@pytest.mark.parametrize(
    ("offset", "length"),
    [(0, len(BODY)), (5000, 1), (4095, 70_000), (65_537, 100_000), (len(BODY) - 1, 9), (len(BODY), 10),
     (len(BODY) + 4096, 10), (100, 0)],
)  # fmt: skip
def test_a_mapped_range_holds_what_a_load_returns(local: LocalBackend, offset: int, length: int) -> None:
    got = local.map_range(PACK, offset, length)
    assert got is not None
    try:
        assert got.view.tobytes() == local.load(PACK, offset, length) == BODY[offset : offset + length]
    finally:
        got.close()
    with pytest.raises(ValueError, match="released"):
        got.view.tobytes()


def test_a_missing_file_is_not_mapped(local: LocalBackend) -> None:
    assert local.map_range(Handle(FileType.PACK, "cd" * 32), 0, 10) is None


@pytest.mark.parametrize(("offset", "length"), [(-5, 10), (-5000, 100)])
def test_a_range_the_file_cannot_hold_is_not_mapped(local: LocalBackend, offset: int, length: int) -> None:
    assert local.map_range(PACK, offset, length) is None  # left to the load, which bounds it


@pytest.mark.usefixtures("allowed")
def test_a_mapping_still_viewed_is_unmapped_with_its_last_view(local: LocalBackend) -> None:
    with mapped.load_range(_refusing(local), PACK, 10, 20) as view:
        piece = view[2:6]
    assert bytes(piece) == BODY[12:16]  # the caller's own view stays valid


def _refusing(local: LocalBackend) -> LocalBackend:
    return _LoadsRefused(local.root)


@pytest.mark.usefixtures("allowed")
@pytest.mark.parametrize(
    "wrap",
    [
        lambda b: b,
        ReadOnlyBackend,
        AppendOnlyBackend,
        lambda b: ConcurrencyLimitedBackend(b, 2),
        lambda b: RetryingBackend(DeadlineBackend(b, RetryPolicy()), RetryPolicy()),
    ],
)
def test_wrappers_that_keep_loads_unchanged_let_ranges_be_mapped(local: LocalBackend, wrap: object) -> None:
    backend = wrap(_refusing(local))  # type: ignore[operator]
    with mapped.load_range(backend, PACK, 1000, 3000) as view:
        assert view.tobytes() == BODY[1000:4000]


class _Counting(LocalBackend):
    loads = 0

    def load(self, handle: Handle, offset: int = 0, length: int | None = None, *, limit: int | None = None
             ) -> bytes:  # fmt: skip
        type(self).loads += 1
        return super().load(handle, offset, length, limit=limit)


@pytest.mark.parametrize("allow", [True, False])
@pytest.mark.parametrize(
    "wrap",
    [
        lambda b: b,
        lambda b: RateLimitedBackend(b, None, TokenBucket(1 << 30)),
        lambda b: FaultInjectingBackend(b, FaultPlan(rate=0.0)),
        lambda b: ReadOnlyBackend(RateLimitedBackend(b, None, TokenBucket(1 << 30))),
    ],
)
def test_a_process_not_allowed_or_a_wrapper_that_changes_loads_gets_a_load(
    local: LocalBackend, wrap: object, allow: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mapped, "_allowed", allow)
    monkeypatch.setattr(_Counting, "loads", 0)
    inner = _Counting(local.root)
    plain = allow and wrap(inner) is inner  # type: ignore[operator]
    with mapped.load_range(wrap(inner), PACK, 7, 70) as view:  # type: ignore[operator]
        assert view.tobytes() == BODY[7:77]
    assert _Counting.loads == (0 if plain else 1)


@pytest.mark.usefixtures("allowed")
def test_a_range_that_cannot_be_mapped_is_loaded_and_fails_as_a_load(local: LocalBackend) -> None:
    with pytest.raises(ObjectNotFound), mapped.load_range(local, Handle(FileType.PACK, "cd" * 32), 0, 10):
        pass


def test_a_file_that_shrinks_while_mapped_kills_only_the_process_that_maps(local: LocalBackend) -> None:
    """Why only contained processes may map: the kernel's answer to reading past the new end."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        faulthandler.disable()  # its death is expected: no dump
        got = local.map_range(PACK, 0, len(BODY))
        os.truncate(local._file(PACK), 0)
        if got is not None:
            got.view.tobytes()
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == -signal.SIGBUS
    assert local.load(PACK) == b""  # this process goes on

