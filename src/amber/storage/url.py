"""Choose a backend from a repository location, and stack the wrappers on it.

Locations (docs/backends.md)::

    /path, local:/path
    sftp://[user@]host[:port]/path      path relative to the login directory;
    sftp://[user@]host[:port]//abs      ... or absolute (restic's form)
    sftp:[user@]host:path               scp form
    s3:https://host[:port]/bucket[/prefix], s3:http://..., s3:s3.amazonaws.com/bucket[/prefix]
    rclone:remote:path
    rest:http[s]://[user:pass@]host[:port]/[path/]

``open_backend`` returns ``RateLimit(Retry(Concurrency(Deadline(Faults(backend)))))``;
each layer is present only when configured (retry always is). The connection
limit sits under the retry layer so a backoff sleep holds no slot, and the
request deadline under the limit so queueing for a slot does not count.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar
from urllib.parse import unquote, urlsplit

from amber.errors import TransientStorageError, UsageError
from amber.storage.base import Backend, RetentionBackend
from amber.storage.concurrency import ConcurrencyLimitedBackend
from amber.storage.faults import FaultInjectingBackend, FaultPlan, plan_from_env
from amber.storage.local import LocalBackend
from amber.storage.ratelimit import RateLimitedBackend, kib_bucket
from amber.storage.retention import retention_of
from amber.storage.retry import DeadlineBackend, RetryingBackend, RetryPolicy

T = TypeVar("T")
DEFAULT_CONNECTIONS = 5

# -o KEY=VALUE: the generic keys, then one prefix per backend
GENERIC_KEYS = {"connections", "timeout", "retries", "retry-delay"}
BACKEND_KEYS = {
    "sftp": {"sftp.accept-new-host-key", "sftp.ssh-config"},
    "s3": {"s3.region", "s3.lock-mode", "s3.lock-days", "s3.bucket-lookup", "s3.storage-class"},
    "rclone": {"rclone.program", "rclone.args"},
    "rest": set(),
    "local": set(),
}


@dataclass(frozen=True)
class BackendOptions:
    """What the global CLI options ask of every backend."""

    limit_upload_kib: float | None = None
    limit_download_kib: float | None = None
    extra: Mapping[str, str] = field(default_factory=dict)  # -o key=value
    faults: FaultPlan | None = None  # None: read AMBER_FAULT_* from the environment
    on_retry: Callable[[str, int, TransientStorageError], None] | None = None  # retry notices


@dataclass(frozen=True, slots=True)
class Location:
    scheme: str  # local, sftp, s3, rclone, rest
    path: str = ""
    host: str = ""
    user: str = ""
    port: int | None = None
    endpoint: str = ""  # s3: scheme://host[:port], "" for AWS; rest: base URL
    bucket: str = ""


def parse_location(location: str) -> Location:
    """Pure: split a repository location string into its parts."""
    if not location:
        raise UsageError("no repository given: use -r/--repo or AMBER_REPOSITORY")
    scheme, sep, rest = location.partition(":")
    if location.startswith("local:"):
        return Location("local", path=rest)
    if not sep or scheme not in {"sftp", "s3", "rclone", "rest", "b2", "gs", "azure"}:
        return Location("local", path=location)
    if not rest:
        raise UsageError(f"incomplete repository location {location!r}")
    if scheme == "sftp":
        return _parse_sftp(location, rest)
    if scheme == "s3":
        return _parse_s3(location, rest)
    if scheme == "rclone":
        if ":" not in rest:
            raise UsageError(f"rclone location must be rclone:REMOTE:PATH, not {location!r}")
        return Location("rclone", path=rest)
    if scheme == "rest":
        parts = urlsplit(rest)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"rest location must be rest:http[s]://host[:port]/path, not {location!r}")
        return Location("rest", endpoint=rest.rstrip("/") + "/")
    raise UsageError(f"backend '{scheme}:' is not supported; use s3:, sftp:, rest: or rclone:")


def _parse_sftp(location: str, rest: str) -> Location:
    if rest.startswith("//"):
        parts = urlsplit("sftp:" + rest)
        if not parts.hostname:
            raise UsageError(f"no host in {location!r}")
        try:
            port = parts.port
        except ValueError as exc:
            raise UsageError(f"bad port in {location!r}") from exc
        path = unquote(parts.path)
        path = path[1:] if path.startswith("/") else path  # sftp://h//abs is absolute; sftp://h/rel is not
        return Location(
            "sftp", path=path or ".", host=parts.hostname, user=unquote(parts.username or ""), port=port
        )
    userhost, sep, path = rest.partition(":")
    if not sep or not userhost:
        raise UsageError(f"sftp location must be sftp://[user@]host[:port]/path, not {location!r}")
    user, _, host = userhost.rpartition("@")
    return Location("sftp", path=path or ".", host=host, user=user)


def _parse_s3(location: str, rest: str) -> Location:
    if rest.startswith(("http://", "https://")):
        parts = urlsplit(rest)
        endpoint = f"{parts.scheme}://{parts.netloc}"
        path = parts.path
    else:
        host, _, path = rest.partition("/")
        endpoint = f"https://{host}"
        path = "/" + path
    bucket, _, prefix = path.lstrip("/").partition("/")
    if not bucket:
        raise UsageError(f"no bucket in {location!r}: use s3:https://host/bucket[/prefix]")
    host = urlsplit(endpoint).hostname or ""
    if host == "amazonaws.com" or host.endswith(".amazonaws.com"):
        endpoint = ""  # AWS itself: let boto3 pick the regional endpoint
    return Location("s3", path=prefix.strip("/"), host=host, endpoint=endpoint, bucket=bucket)


def parse_extra_options(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["s3.lock-days=30", ...]`` -> dict; unknown keys are a UsageError."""
    known = GENERIC_KEYS.union(*BACKEND_KEYS.values())
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or key not in known:
            raise UsageError(f"unknown backend option {pair!r}; known: {', '.join(sorted(known))}")
        out[key] = value.strip()
    return out


_BOOLEAN = {"1", "true", "yes", "0", "false", "no"}


def option_problem(location: str, extra: Mapping[str, str]) -> tuple[str, str] | None:
    """Pure: the first ``(key, problem)`` of backend options for ``location``, or None.

    The same rules as ``-o KEY=VALUE`` (the config file's ``options`` table uses them too).
    """
    scheme = parse_location(location).scheme
    known = GENERIC_KEYS.union(*BACKEND_KEYS.values())
    for key, value in extra.items():
        if key not in known:
            return key, f"unknown backend option; known: {', '.join(sorted(known))}"
        if key not in GENERIC_KEYS and key not in BACKEND_KEYS[scheme]:
            return key, f"does not apply to a {scheme} repository"
        if key in ("connections", "timeout", "retries", "retry-delay", "s3.lock-days"):
            try:
                number = float(value)
            except ValueError:
                return key, f"not a number: {value!r}"
            if number < 0:
                return key, "must not be negative"
            if key in ("connections", "retries", "s3.lock-days") and number != int(number):
                return key, f"must be a whole number, not {value!r}"
        if key == "s3.lock-mode" and value.lower() not in ("governance", "compliance"):
            return key, f"must be governance or compliance, not {value!r}"
        if key == "s3.bucket-lookup" and value not in ("auto", "path", "dns"):
            return key, f"must be auto, path or dns, not {value!r}"
        if key == "sftp.accept-new-host-key" and value.lower() not in _BOOLEAN:
            return key, f"must be true or false, not {value!r}"
    mode, days = extra.get("s3.lock-mode", ""), extra.get("s3.lock-days", "")
    if bool(mode) != bool(days and float(days) > 0):
        missing = "s3.lock-days" if mode else "s3.lock-mode"
        return missing, "Object Lock needs both s3.lock-mode and s3.lock-days (a positive number of days)"
    return None


def _number(extra: Mapping[str, str], key: str, default: float) -> float:
    if key not in extra:
        return default
    try:
        value = float(extra[key])
    except ValueError as exc:
        raise UsageError(f"-o {key}: not a number: {extra[key]!r}") from exc
    if value < 0:
        raise UsageError(f"-o {key}: must not be negative")
    return value


def retry_policy(extra: Mapping[str, str], remote: bool) -> RetryPolicy:
    """Remote backends get a request deadline by default; local disks do not."""
    timeout = _number(extra, "timeout", 120.0 if remote else 0.0)
    return replace(
        RetryPolicy(),
        attempts=max(1, int(_number(extra, "retries", 7)) + 1),
        base_delay=_number(extra, "retry-delay", 0.5),
        timeout=timeout or None,
    )


def open_backend(location: str, options: BackendOptions | None = None) -> Backend:
    """Open ``location`` with the wrappers ``options`` ask for (there are no process-wide defaults:
    each operation passes its own, see ``services.context``)."""
    opts = options if options is not None else BackendOptions()
    loc = parse_location(location)
    problem = option_problem(location, opts.extra)
    if problem is not None:
        raise UsageError(f"-o {problem[0]}: {problem[1]}")
    remote = loc.scheme != "local"
    connections = int(_number(opts.extra, "connections", DEFAULT_CONNECTIONS if remote else 0))
    # one connection more than the limit: lock files bypass it (storage/concurrency.py)
    backend = _open_raw(loc, location, opts.extra, (connections or DEFAULT_CONNECTIONS) + 1)
    faults = opts.faults if opts.faults is not None else plan_from_env(os.environ)
    if faults is not None and faults.rate > 0:
        backend = FaultInjectingBackend(backend, faults)
    policy = retry_policy(opts.extra, remote)
    if policy.timeout is not None:
        backend = DeadlineBackend(backend, policy)
    if connections:
        backend = ConcurrencyLimitedBackend(backend, connections)
    backend = RetryingBackend(backend, replace(policy, timeout=None), on_retry=opts.on_retry)
    if opts.limit_upload_kib or opts.limit_download_kib:
        backend = RateLimitedBackend(
            backend, kib_bucket(opts.limit_upload_kib), kib_bucket(opts.limit_download_kib)
        )
    return backend


def find_layer(backend: Backend, kind: type[T]) -> T | None:
    """The outermost layer of a wrapped backend that is a ``kind`` (wrappers keep ``inner``)."""
    layer: object | None = backend
    while layer is not None:
        if isinstance(layer, kind):
            return layer
        layer = getattr(layer, "inner", None)
    return None


def retention_layer(backend: Backend) -> RetentionBackend | None:
    """``backend``'s Object Lock capability, wrapped by its retry and connection layers (or None)."""
    return retention_of(backend)


def _open_raw(loc: Location, location: str, extra: Mapping[str, str], connections: int) -> Backend:
    # imported here: paramiko and boto3 take a while to import and most runs need neither
    if loc.scheme == "local":
        return LocalBackend(loc.path)
    if loc.scheme == "sftp":
        from amber.storage.sftp import SftpBackend

        return SftpBackend(
            loc.host, loc.path, user=loc.user or None, port=loc.port, connections=connections,
            accept_new_host_key=extra.get("sftp.accept-new-host-key", "").lower() in ("1", "true", "yes"),
            ssh_config=extra.get("sftp.ssh-config") or None,
        )  # fmt: skip
    if loc.scheme == "s3":
        from amber.storage.s3 import S3Backend, S3Settings

        settings = S3Settings.from_options(extra)
        return S3Backend(
            loc.endpoint, loc.bucket, loc.path, settings, connections=connections, location=location
        )
    if loc.scheme == "rest":
        from amber.storage.rest import RestBackend

        return RestBackend(loc.endpoint, connections=connections)
    from amber.storage.rclone import RcloneBackend

    args = extra.get("rclone.args", "").split()
    return RcloneBackend(loc.path, connections=connections, program=extra.get("rclone.program") or "rclone",
                         extra_args=args)  # fmt: skip
