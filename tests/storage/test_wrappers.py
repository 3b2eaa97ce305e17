"""The backend wrappers: retry, rate limit, connection limit, fault injection; URL parsing.

Pure parts (backoff, deadlines, token bucket, URL parsing) are table-driven. The
wrappers themselves run over a real LocalBackend in a temporary directory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from amber.errors import ObjectNotFound, PermissionDenied, StorageError, TransientStorageError, UsageError
from amber.storage.base import Backend, FileInfo, FileType, Handle
from amber.storage.concurrency import ConcurrencyLimitedBackend
from amber.storage.faults import FaultInjectingBackend, FaultPlan, plan_from_env
from amber.storage.local import LocalBackend
from amber.storage.ratelimit import RateLimitedBackend, TokenBucket
from amber.storage.retry import (
    RetryingBackend,
    RetryPolicy,
    backoff_delay,
    request_deadline,
    run_with_deadline,
)
from amber.storage.url import Location, parse_extra_options, parse_location, retry_policy

NAME = "ab" * 32


# -- pure: backoff, deadlines ------------------------------------------------------------


@pytest.mark.parametrize(
    ("retry", "jitter", "expected"),
    [
        (1, 0.0, 0.25),  # half of base 0.5 is fixed
        (1, 0.999999, 0.5),
        (2, 0.0, 0.5),
        (3, 0.5, 1.5),  # step 2.0: 1.0 fixed + 0.5 of 1.0
        (6, 0.0, 8.0),  # step 16
        (7, 0.0, 15.0),  # step capped at max_delay 30
        (20, 1.0, 30.0),
    ],
)
def test_backoff_delay(retry: int, jitter: float, expected: float) -> None:
    assert backoff_delay(RetryPolicy(), retry, jitter) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    ("policy", "nbytes", "expected"),
    [
        (RetryPolicy(timeout=None), 10**9, None),
        (RetryPolicy(timeout=120, min_rate=32 * 1024), 0, 120.0),
        (RetryPolicy(timeout=120, min_rate=32 * 1024), 16 * 2**20, 120.0 + 512),
        (RetryPolicy(timeout=1, min_rate=1000), 1000, 2.0),
    ],
)
def test_request_deadline(policy: RetryPolicy, nbytes: int, expected: float | None) -> None:
    assert request_deadline(policy, nbytes) == expected


def test_run_with_deadline_abandons_a_hung_call() -> None:
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(TransientStorageError, match="no answer"):
        run_with_deadline(lambda: release.wait(30), 0.2, "load x")
    assert time.monotonic() - started < 10
    release.set()
    assert run_with_deadline(lambda: 42, 5, "x") == 42
    with pytest.raises(PermissionDenied):
        run_with_deadline(lambda: (_ for _ in ()).throw(PermissionDenied("no")), 5, "x")


# -- retry over a real local backend -------------------------------------------------------


@pytest.fixture
def local(tmp_path: Path) -> LocalBackend:
    b = LocalBackend(tmp_path / "repo")
    b.create()
    return b


class Flaky:
    """A real backend that fails the next ``fail`` calls of ``op`` with ``error``; counts calls."""

    def __init__(self, inner: Backend, op: str, fail: int, error: Exception) -> None:
        self.inner, self.location = inner, inner.location
        self.op, self.fail, self.error = op, fail, error
        self.calls: dict[str, int] = {}

    def _maybe(self, op: str) -> None:
        self.calls[op] = self.calls.get(op, 0) + 1
        if op == self.op and self.fail > 0:
            self.fail -= 1
            raise self.error

    def create(self) -> None:
        self.inner.create()

    def exists(self) -> bool:
        return self.inner.exists()

    def save(self, handle: Handle, data: bytes | bytearray | memoryview) -> None:
        self._maybe("save")
        self.inner.save(handle, data)

    def load(
        self, handle: Handle, offset: int = 0, length: int | None = None, *, limit: int | None = None
    ) -> bytes:
        self._maybe("load")
        return self.inner.load(handle, offset, length, limit=limit)

    def stat(self, handle: Handle) -> FileInfo:
        self._maybe("stat")
        return self.inner.stat(handle)

    def list(self, type: FileType) -> Iterator[FileInfo]:
        self._maybe("list")
        return self.inner.list(type)

    def remove(self, handle: Handle) -> None:
        self.inner.remove(handle)
        self._maybe("remove")  # the delete happened, then the answer was lost

    def close(self) -> None:
        self.inner.close()


def _retrying(inner: Backend, attempts: int = 4) -> tuple[RetryingBackend, list[float]]:
    slept: list[float] = []
    policy = RetryPolicy(attempts=attempts, base_delay=0.01, timeout=5)
    return RetryingBackend(inner, policy, sleep=slept.append, seed=1), slept


def test_transient_errors_are_retried_with_growing_delays(local: LocalBackend) -> None:
    flaky = Flaky(local, "save", 3, TransientStorageError("reset"))
    backend, slept = _retrying(flaky)
    backend.save(Handle(FileType.PACK, NAME), b"data")
    assert flaky.calls["save"] == 4 and backend.retries == 3
    assert len(slept) == 3 and slept[0] < slept[2]
    assert local.load(Handle(FileType.PACK, NAME)) == b"data"


def test_retries_give_up_with_a_transient_error(local: LocalBackend) -> None:
    flaky = Flaky(local, "load", 100, TransientStorageError("reset"))
    backend, _ = _retrying(flaky, attempts=3)
    local.save(Handle(FileType.PACK, NAME), b"x")
    with pytest.raises(TransientStorageError, match="gave up after 3 attempts"):
        backend.load(Handle(FileType.PACK, NAME))
    assert flaky.calls["load"] == 3


@pytest.mark.parametrize("error", [PermissionDenied("no"), StorageError("bad"), ObjectNotFound("gone")])
def test_permanent_errors_are_not_retried(local: LocalBackend, error: Exception) -> None:
    flaky = Flaky(local, "stat", 1, error)
    backend, slept = _retrying(flaky)
    with pytest.raises(type(error)):
        backend.stat(Handle(FileType.PACK, NAME))
    assert flaky.calls["stat"] == 1 and slept == []


def test_remove_whose_answer_was_lost_is_not_reported_missing(local: LocalBackend) -> None:
    h = Handle(FileType.LOCK, NAME)
    local.save(h, b"lock")
    backend, _ = _retrying(Flaky(local, "remove", 1, TransientStorageError("lost answer")))
    backend.remove(h)  # retried: the second try finds it gone, which is success
    assert list(local.list(FileType.LOCK)) == []
    with pytest.raises(ObjectNotFound):  # but a first-try miss is still reported
        backend.remove(h)


class Truncating(Flaky):
    def __init__(self, inner: Backend, times: int) -> None:
        super().__init__(inner, "", 0, Exception())
        self.times = times

    def load(
        self, handle: Handle, offset: int = 0, length: int | None = None, *, limit: int | None = None
    ) -> bytes:
        data = super().load(handle, offset, length, limit=limit)
        if self.times > 0:
            self.times -= 1
            return data[: len(data) // 2]
        return data


@pytest.mark.parametrize(
    ("name", "offset", "length"),
    [
        (NAME, 10, 100),  # a short range
        ("0" * 64, 0, None),  # a whole object whose name is not its hash: checked by size
        ("config", 0, None),
    ],
)
def test_truncated_reads_are_detected_and_retried(
    local: LocalBackend, name: str, offset: int, length: int | None
) -> None:
    h = Handle(FileType.CONFIG) if name == "config" else Handle(FileType.INDEX, name)
    data = bytes(range(256)) * 10
    local.save(h, data)
    backend, _ = _retrying(Truncating(local, 2))
    want = data[offset:] if length is None else data[offset : offset + length]
    assert backend.load(h, offset, length) == want
    assert backend.retries == 2


def test_whole_object_named_by_its_hash_is_verified_without_a_stat(local: LocalBackend) -> None:
    import hashlib

    data = b"encrypted index bytes" * 100
    h = Handle(FileType.INDEX, hashlib.sha256(data).hexdigest())
    local.save(h, data)
    counted = Flaky(local, "", 0, Exception())
    backend, _ = _retrying(counted)
    assert backend.load(h) == data
    assert counted.calls == {"load": 1}
    backend2, _ = _retrying(Truncating(local, 1))
    assert backend2.load(h) == data and backend2.retries == 1


def test_a_range_past_the_end_is_not_a_truncation(local: LocalBackend) -> None:
    h = Handle(FileType.PACK, NAME)
    local.save(h, b"0123456789")
    backend, _ = _retrying(local)
    assert backend.load(h, 5, 100) == b"56789"
    assert backend.load(h, 50, 10) == b""
    assert backend.retries == 0


def test_a_hung_request_times_out_and_is_retried(local: LocalBackend) -> None:
    plan = FaultPlan(rate=1.0, kinds=("hang",), hang=3.0)
    hanging = FaultInjectingBackend(local, plan)
    local.save(Handle(FileType.PACK, NAME), b"x")
    backend = RetryingBackend(hanging, RetryPolicy(attempts=2, base_delay=0.01, timeout=0.3), seed=1)
    started = time.monotonic()
    with pytest.raises(TransientStorageError, match="no answer within"):
        backend.stat(Handle(FileType.PACK, NAME))
    assert time.monotonic() - started < 2.5  # both tries were cut off, well before a hang ended
    assert hanging.injected["hang"] == 2


# -- fault injection ------------------------------------------------------------------------


def test_faults_are_injected_at_about_the_rate_and_replayable(local: LocalBackend) -> None:
    h = Handle(FileType.SNAPSHOT, NAME)
    local.save(h, b"s")

    def run(seed: int) -> tuple[int, list[str]]:
        faulty = FaultInjectingBackend(
            local, FaultPlan(rate=0.1, seed=seed, delay=0, kinds=("error", "timeout"))
        )
        outcomes = []
        for _ in range(1000):
            try:
                faulty.stat(h)
                outcomes.append("ok")
            except TransientStorageError as exc:
                outcomes.append(exc.message)
        return sum(faulty.injected.values()), outcomes

    count, outcomes = run(5)
    assert 60 <= count <= 140
    assert run(5) == (count, outcomes)  # same seed, same faults
    assert run(6)[1] != outcomes


def test_truncated_reads_are_injected(local: LocalBackend) -> None:
    h = Handle(FileType.PACK, NAME)
    local.save(h, b"x" * 1000)
    faulty = FaultInjectingBackend(local, FaultPlan(rate=1.0, kinds=("truncate",)))
    assert len(faulty.load(h)) < 1000


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"AMBER_FAULT_RATE": ""}, None),
        ({"AMBER_FAULT_RATE": "0.1"}, FaultPlan(0.1)),
        (
            {"AMBER_FAULT_RATE": "0.2", "AMBER_FAULT_SEED": "9", "AMBER_FAULT_KINDS": "error"},
            FaultPlan(0.2, 9, ("error",)),
        ),
    ],
)
def test_fault_plan_from_env(env: dict[str, str], expected: FaultPlan | None) -> None:
    assert plan_from_env(env) == expected


@pytest.mark.parametrize(
    "env",
    [
        {"AMBER_FAULT_RATE": "2"},
        {"AMBER_FAULT_RATE": "x"},
        {"AMBER_FAULT_RATE": "0.1", "AMBER_FAULT_KINDS": "fire"},
    ],
)
def test_bad_fault_settings_are_usage_errors(env: dict[str, str]) -> None:
    with pytest.raises(UsageError):
        plan_from_env(env)


# -- rate limit -----------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


@pytest.mark.parametrize(
    ("rate", "steps", "waits"),
    [
        # (advance clock by dt, then reserve n) -> expected wait
        (1000, [(0, 500), (0, 500), (0, 500)], [0, 0, 0.5]),  # a full bucket, then debt
        (1000, [(0, 3000)], [2.0]),  # one request bigger than the bucket
        (1000, [(0, 1000), (0.5, 500)], [0, 0]),  # refilled by waiting
        (1000, [(10, 1000), (0, 1000)], [0, 1.0]),  # never more than one second saved up
        (100, [(0, 100), (0, 50), (0, 50)], [0, 0.5, 1.0]),  # debts add up
    ],
)
def test_token_bucket(rate: float, steps: list[tuple[float, int]], waits: list[float]) -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate, clock=clock)
    got = []
    for advance, n in steps:
        clock.now += advance
        got.append(bucket.reserve(n))
    assert got == pytest.approx(waits)


def test_rate_limited_backend_paces_uploads_and_downloads(local: LocalBackend) -> None:
    clock = FakeClock()
    up = TokenBucket(10_000, clock=clock, sleep=clock.sleep)
    down = TokenBucket(20_000, clock=clock, sleep=clock.sleep)
    backend = RateLimitedBackend(local, up, down)
    for i in range(5):
        backend.save(Handle(FileType.PACK, f"{i:064x}"), b"u" * 10_000)
    assert sum(clock.slept) == pytest.approx(4.0)  # 50 kB at 10 kB/s, the first second was saved up
    clock.slept.clear()
    for i in range(5):
        assert backend.load(Handle(FileType.PACK, f"{i:064x}"), 0, 10_000) == b"u" * 10_000
    assert sum(clock.slept) == pytest.approx(1.5)


# -- connection limit -------------------------------------------------------------------------


class Slow(Flaky):
    def __init__(self, inner: Backend) -> None:
        super().__init__(inner, "", 0, Exception())
        self.active = 0
        self.peak = 0
        self.lock = threading.Lock()

    def save(self, handle: Handle, data: bytes | bytearray | memoryview) -> None:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        time.sleep(0.02)
        super().save(handle, data)
        with self.lock:
            self.active -= 1


def test_connection_limit_bounds_requests_in_flight(local: LocalBackend) -> None:
    slow = Slow(local)
    backend = ConcurrencyLimitedBackend(slow, 3)
    threads = [
        threading.Thread(target=backend.save, args=(Handle(FileType.PACK, f"{i:064x}"), b"p"))
        for i in range(12)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 1 <= slow.peak <= 3
    assert len(list(backend.list(FileType.PACK))) == 12


def test_listing_does_not_hold_a_connection(local: LocalBackend) -> None:
    for i in range(3):
        local.save(Handle(FileType.LOCK, f"{i:064x}"), b"l")
    backend = ConcurrencyLimitedBackend(local, 1)
    for fi in backend.list(FileType.LOCK):  # loading while iterating must not deadlock
        assert backend.load(Handle(FileType.LOCK, fi.name)) == b"l"


# -- URL parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/srv/repo", Location("local", path="/srv/repo")),
        ("local:/srv/repo", Location("local", path="/srv/repo")),
        ("relative/dir", Location("local", path="relative/dir")),
        ("C:odd", Location("local", path="C:odd")),
        (
            "sftp://bob@nas:2222//srv/repo",
            Location("sftp", path="/srv/repo", host="nas", user="bob", port=2222),
        ),
        ("sftp://nas/backups/amber", Location("sftp", path="backups/amber", host="nas")),
        ("sftp://[::1]:22//r", Location("sftp", path="/r", host="::1", port=22)),
        ("sftp:bob@nas:/srv/repo", Location("sftp", path="/srv/repo", host="nas", user="bob")),
        ("sftp:nas:repo", Location("sftp", path="repo", host="nas")),
        (
            "s3:https://minio.local:9000/bucket/pre/fix",
            Location(
                "s3", path="pre/fix", host="minio.local", endpoint="https://minio.local:9000", bucket="bucket"
            ),
        ),
        (
            "s3:http://127.0.0.1:5000/b",
            Location("s3", host="127.0.0.1", endpoint="http://127.0.0.1:5000", bucket="b"),
        ),
        ("s3:s3.amazonaws.com/bucket/p", Location("s3", path="p", host="s3.amazonaws.com", bucket="bucket")),
        ("s3:s3.eu-west-1.amazonaws.com/b", Location("s3", host="s3.eu-west-1.amazonaws.com", bucket="b")),
        (
            "s3:s3.wasabisys.com/b",
            Location("s3", host="s3.wasabisys.com", endpoint="https://s3.wasabisys.com", bucket="b"),
        ),
        ("rclone:gdrive:backups/amber", Location("rclone", path="gdrive:backups/amber")),
        ("rest:http://host:8000/repo", Location("rest", endpoint="http://host:8000/repo/")),
        ("rest:https://u:p@host/", Location("rest", endpoint="https://u:p@host/")),
    ],
)
def test_parse_location(url: str, expected: Location) -> None:
    assert parse_location(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "",
        "sftp:",
        "sftp://",
        "sftp:nohostpath",
        "s3:https://host",
        "s3:host",
        "rclone:noremote",
        "rest:ftp://x/",
        "b2:bucket",
        "sftp://h:notaport/x",
    ],
)
def test_bad_locations_are_usage_errors(url: str) -> None:
    with pytest.raises(UsageError):
        parse_location(url)


def test_extra_options() -> None:
    assert parse_extra_options(["connections=8", "s3.lock-days = 30"]) == {
        "connections": "8",
        "s3.lock-days": "30",
    }
    for bad in (["nope=1"], ["connections"], ["s3.lockdays=3"]):
        with pytest.raises(UsageError):
            parse_extra_options(bad)
    assert retry_policy({}, remote=True).timeout == 120
    assert retry_policy({}, remote=False).timeout is None
    assert retry_policy({"retries": "0", "timeout": "5"}, remote=False) == RetryPolicy(attempts=1, timeout=5)


# -- the stack: slots under retry, locks exempt, read-only ----------------------------------------


def test_a_backoff_sleep_holds_no_connection_slot(local: LocalBackend) -> None:
    """Retry sits above the connection limit: while one request waits to retry, others proceed."""
    limited = ConcurrencyLimitedBackend(Flaky(local, "save", 2, TransientStorageError("503")), 1)
    free_during_backoff: list[bool] = []

    def sleep(_seconds: float) -> None:
        got = limited._slots.acquire(blocking=False)
        free_during_backoff.append(got)
        if got:
            limited._slots.release()

    backend = RetryingBackend(limited, RetryPolicy(attempts=4, base_delay=0.01, timeout=None), sleep=sleep)
    backend.save(Handle(FileType.PACK, NAME), b"x")
    assert free_during_backoff == [True, True]
    assert local.load(Handle(FileType.PACK, NAME)) == b"x"


def test_open_backend_stacks_retry_above_the_connection_limit(tmp_path: Path) -> None:
    from amber.storage.retry import DeadlineBackend
    from amber.storage.url import BackendOptions, open_backend

    opts = BackendOptions(limit_upload_kib=100, extra={"connections": "2", "timeout": "30"})
    backend = open_backend(str(tmp_path / "r"), opts)
    kinds = []
    layer: object | None = backend
    while layer is not None:
        kinds.append(type(layer))
        layer = getattr(layer, "inner", None)
    assert kinds == [RateLimitedBackend, RetryingBackend, ConcurrencyLimitedBackend, DeadlineBackend,
                     LocalBackend]  # fmt: skip
    assert isinstance(backend, RateLimitedBackend) and isinstance(backend.inner, RetryingBackend)
    assert backend.inner.policy.timeout is None  # the deadline is the layer under the slots


class Blocking(Flaky):
    """Pack saves wait for ``release``; everything else goes straight through."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner, "", 0, Exception())
        self.started = threading.Event()
        self.release = threading.Event()

    def save(self, handle: Handle, data: bytes | bytearray | memoryview) -> None:
        if handle.type is FileType.PACK:
            self.started.set()
            assert self.release.wait(10)
        super().save(handle, data)


def test_a_lock_save_proceeds_while_every_slot_is_busy(local: LocalBackend) -> None:
    blocking = Blocking(local)
    backend = ConcurrencyLimitedBackend(blocking, 1)
    upload = threading.Thread(target=backend.save, args=(Handle(FileType.PACK, NAME), b"pack"))
    upload.start()
    try:
        assert blocking.started.wait(5)
        done = threading.Event()

        def refresh() -> None:
            backend.save(Handle(FileType.LOCK, "cd" * 32), b"lease")
            backend.remove(Handle(FileType.LOCK, "cd" * 32))
            done.set()

        threading.Thread(target=refresh, daemon=True).start()
        assert done.wait(5), "the lock refresh queued behind the upload"
        queued = threading.Event()
        threading.Thread(target=lambda: (backend.stat(Handle(FileType.PACK, NAME + "")), queued.set()),
                         daemon=True).start()  # fmt: skip
        assert not queued.wait(0.2)  # a pack request still waits for the slot
    finally:
        blocking.release.set()
        upload.join()


def test_a_lock_save_does_not_pay_the_upload_debt(local: LocalBackend) -> None:
    slept: list[float] = []
    bucket = TokenBucket(1024, sleep=slept.append)
    backend = RateLimitedBackend(local, bucket, bucket)
    backend.save(Handle(FileType.PACK, NAME), b"p" * 100_000)  # deep in debt
    slept.clear()
    backend.save(Handle(FileType.LOCK, "cd" * 32), b"lease")
    assert backend.load(Handle(FileType.LOCK, "cd" * 32)) == b"lease"
    assert slept == []
    backend.save(Handle(FileType.INDEX, "ef" * 32), b"i")
    assert slept and slept[0] > 50  # other files still wait the debt off


def test_the_deadline_does_not_count_the_wait_for_a_slot(local: LocalBackend) -> None:
    from amber.storage.retry import DeadlineBackend

    deadline = DeadlineBackend(local, RetryPolicy(timeout=0.3, min_rate=10**12))
    backend = ConcurrencyLimitedBackend(deadline, 1)
    local.save(Handle(FileType.INDEX, NAME), b"i")
    got: list[bytes] = []
    with backend._slots:  # another request holds the only slot for longer than the deadline
        waiter = threading.Thread(target=lambda: got.append(backend.load(Handle(FileType.INDEX, NAME))))
        waiter.start()
        time.sleep(0.5)
    waiter.join(5)
    assert got == [b"i"]


def test_read_only_refuses_writes_and_deletes_but_reads(local: LocalBackend) -> None:
    from amber.storage.readonly import ReadOnlyBackend

    local.save(Handle(FileType.SNAPSHOT, NAME), b"s")
    backend = ReadOnlyBackend(local)
    assert backend.load(Handle(FileType.SNAPSHOT, NAME)) == b"s"
    assert [f.name for f in backend.list(FileType.SNAPSHOT)] == [NAME]
    assert backend.stat(Handle(FileType.SNAPSHOT, NAME)).size == 1 and backend.exists() is False
    for attempt in (
        lambda: backend.save(Handle(FileType.SNAPSHOT, "cd" * 32), b"new"),
        lambda: backend.save(Handle(FileType.LOCK, "cd" * 32), b"lease"),
        lambda: backend.remove(Handle(FileType.SNAPSHOT, NAME)),
        backend.create,
    ):
        with pytest.raises(PermissionDenied, match="read-only"):
            attempt()
    assert [f.name for f in local.list(FileType.SNAPSHOT)] == [NAME]
    assert list(local.list(FileType.LOCK)) == []
