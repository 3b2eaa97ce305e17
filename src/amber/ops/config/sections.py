"""The config file's service-wide tables: [limits], [[notify]], [alerts], [metrics], [web], [catalog],
[state], and where the config and state live by default (docs/config.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from amber.ops.config import check as cc
from amber.ops.config.check import Reader

IONICE_CLASSES = ("idle", "best-effort", "realtime")
EVENTS = ("failure", "partial", "integrity", "anomaly", "success", "capacity", "stale", "summary")


@dataclass(frozen=True)
class LimitsConfig:
    nice: int | None = None
    ionice_class: str | None = None
    ionice_level: int | None = None
    threads: int | None = None  # None = one per core
    cpu_quota_percent: int | None = None
    cpu_weight: int | None = None
    memory_max: str | None = None
    memory_max_bytes: int | None = None
    limit_upload: int = 0  # KiB/s, 0 = unlimited
    limit_download: int = 0


@dataclass(frozen=True)
class NotifyConfig:
    url: str
    events: tuple[str, ...] = ("failure", "partial", "integrity", "anomaly", "capacity", "stale")
    min_interval: str = "1h"
    min_interval_seconds: float = 3600.0
    jobs: tuple[str, ...] = ()  # empty = every job


@dataclass(frozen=True)
class AlertsConfig:
    capacity_percent: int = 80
    stale_hours: float = 26.0
    healthchecks_url: str = ""


@dataclass(frozen=True)
class MetricsConfig:
    textfile: str | None = None  # node_exporter textfile collector path
    listen: str | None = None  # "127.0.0.1:9184" for the daemon's /metrics


@dataclass(frozen=True)
class WebConfig:
    """The dashboard `amber daemon` serves (the same rules as `amber web`, docs/operations.md)."""

    listen: str | None = None  # "127.0.0.1:8440"; None: the daemon serves no dashboard
    tls_cert: str | None = None
    tls_key: str | None = None
    insecure_no_tls: bool = False
    allow_hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class CatalogConfig:
    enabled: bool = True  # the local catalog of file names (a cache; docs/design.md §24)


@dataclass(frozen=True)
class StateConfig:
    path: str
    audit_log: str


def _xdg(var: str, fallback: str) -> str:
    return os.environ.get(var) or os.path.expanduser(fallback)


def default_config_path() -> str:
    return os.path.join(_xdg("XDG_CONFIG_HOME", "~/.config"), "amber", "config.toml")


def default_state_dir() -> str:
    return os.path.join(_xdg("XDG_STATE_HOME", "~/.local/state"), "amber")


def parse_limits(r: Reader, t: dict[str, Any]) -> LimitsConfig:
    p = ("limits",)
    r.only(t, p, ("nice", "ionice_class", "ionice_level", "threads", "cpu_quota_percent", "cpu_weight",
                  "memory_max", "limit_upload", "limit_download"))  # fmt: skip
    memory = r.string(t, p, "memory_max")
    memory_bytes = None
    if memory is not None:
        memory_bytes = cc.parse_size(memory)
        if memory_bytes is None:
            r.fail((*p, "memory_max"), f"expected a size like '512M' or '1G', got {memory!r}")
    return LimitsConfig(
        nice=r.integer(t, p, "nice", -20, 19),
        ionice_class=r.choice(t, p, "ionice_class", IONICE_CLASSES),
        ionice_level=r.integer(t, p, "ionice_level", 0, 7),
        threads=r.integer(t, p, "threads", 1, 1024),
        cpu_quota_percent=r.integer(t, p, "cpu_quota_percent", 1, 100 * 1024),
        cpu_weight=r.integer(t, p, "cpu_weight", 1, 10000),
        memory_max=memory,
        memory_max_bytes=memory_bytes,
        limit_upload=r.integer(t, p, "limit_upload", 0) or 0,
        limit_download=r.integer(t, p, "limit_download", 0) or 0,
    )


def parse_notify(r: Reader, i: int, t: dict[str, Any]) -> NotifyConfig:
    p: cc.KeyPath = ("notify", i)
    r.only(t, p, ("url", "events", "min_interval", "jobs"))
    url = r.string(t, p, "url", required=True)
    assert url is not None
    events = r.strings(t, p, "events") if "events" in t else NotifyConfig.events
    for j, event in enumerate(events):
        if event not in EVENTS:
            r.fail((*p, "events", j), f"unknown event {event!r} (expected one of {', '.join(EVENTS)})")
    interval = r.string(t, p, "min_interval") or "1h"
    seconds = cc.parse_duration(interval)
    if seconds is None:
        r.fail((*p, "min_interval"), f"expected a duration like '30m', '1h' or '1d', got {interval!r}")
    return NotifyConfig(url, events, interval, float(seconds or 0), r.strings(t, p, "jobs"))


def parse_alerts(r: Reader, t: dict[str, Any]) -> AlertsConfig:
    p = ("alerts",)
    r.only(t, p, ("capacity_percent", "stale_hours", "healthchecks_url"))
    capacity = r.integer(t, p, "capacity_percent", 1, 100)
    stale = r.number(t, p, "stale_hours", 0)
    return AlertsConfig(
        capacity_percent=80 if capacity is None else capacity,
        stale_hours=26.0 if stale is None else stale,
        healthchecks_url=r.string(t, p, "healthchecks_url") or "",
    )


def parse_metrics(r: Reader, t: dict[str, Any]) -> MetricsConfig:
    p = ("metrics",)
    r.only(t, p, ("textfile", "listen"))
    textfile = r.string(t, p, "textfile")
    return MetricsConfig(cc.expand(textfile) if textfile else None, r.string(t, p, "listen"))


def parse_web(r: Reader, t: dict[str, Any]) -> WebConfig:
    p = ("web",)
    r.only(t, p, ("listen", "tls_cert", "tls_key", "insecure_no_tls", "allow_hosts"))
    listen = r.string(t, p, "listen")
    if listen is not None:
        host, sep, port = listen.rpartition(":")
        if not sep or not host.strip("[]") or not port.isdigit() or int(port) > 65535:
            r.fail((*p, "listen"), f"expected HOST:PORT like '127.0.0.1:8440', got {listen!r}")
    cert, key = r.string(t, p, "tls_cert"), r.string(t, p, "tls_key")
    if bool(cert) != bool(key):
        r.fail((*p, "tls_key" if cert else "tls_cert"), "give both tls_cert and tls_key, or neither")
    return WebConfig(listen, cc.expand(cert) if cert else None, cc.expand(key) if key else None,
                     r.boolean(t, p, "insecure_no_tls"), r.strings(t, p, "allow_hosts"))  # fmt: skip


def parse_catalog(r: Reader, t: dict[str, Any]) -> CatalogConfig:
    r.only(t, ("catalog",), ("enabled",))
    return CatalogConfig(enabled=r.boolean(t, ("catalog",), "enabled", True))


def parse_state(r: Reader, t: dict[str, Any]) -> StateConfig:
    p = ("state",)
    r.only(t, p, ("path", "audit_log"))
    path = r.string(t, p, "path") or os.path.join(default_state_dir(), "state.db")
    audit = r.string(t, p, "audit_log") or os.path.join(default_state_dir(), "audit.log")
    return StateConfig(cc.expand(path), cc.expand(audit))
