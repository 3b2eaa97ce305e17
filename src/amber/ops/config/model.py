"""The TOML config file: named repositories, jobs, retention, limits, notify, state.

``load_config`` reads and validates the whole file at once. Every problem is a
``ConfigError`` that names the file, the line and the key path, e.g.
``config.toml:12: jobs.home.paths: expected a list of strings``. docs/config.md
documents each key. Unknown keys are errors, so typos never pass silently.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from amber.anomaly.scoring import Thresholds
from amber.errors import ConfigError
from amber.ops.config import check as cc
from amber.ops.config.anomaly import parse_anomaly
from amber.ops.config.check import Reader
from amber.ops.config.databases import databases
from amber.ops.config.reports import ReportConfig, parse_reports
from amber.ops.config.repos import MEDIA_KINDS as MEDIA_KINDS  # re-exported
from amber.ops.config.repos import RepositoryConfig as RepositoryConfig  # re-exported
from amber.ops.config.repos import parse_repository
from amber.ops.config.sections import EVENTS as EVENTS  # re-exported
from amber.ops.config.sections import IONICE_CLASSES as IONICE_CLASSES  # re-exported
from amber.ops.config.sections import AlertsConfig as AlertsConfig  # re-exported
from amber.ops.config.sections import CatalogConfig as CatalogConfig  # re-exported
from amber.ops.config.sections import LimitsConfig as LimitsConfig  # re-exported
from amber.ops.config.sections import MetricsConfig as MetricsConfig  # re-exported
from amber.ops.config.sections import NotifyConfig as NotifyConfig  # re-exported
from amber.ops.config.sections import StateConfig as StateConfig  # re-exported
from amber.ops.config.sections import WebConfig as WebConfig  # re-exported
from amber.ops.config.sections import default_config_path as default_config_path  # re-exported
from amber.ops.config.sections import default_state_dir as default_state_dir  # re-exported
from amber.ops.config.sections import (
    parse_alerts,
    parse_catalog,
    parse_limits,
    parse_metrics,
    parse_notify,
    parse_state,
    parse_web,
)
from amber.sources.databases.spec import DatabaseSpec

SNAPSHOT_KINDS = ("btrfs", "zfs", "lvm", "auto")


@dataclass(frozen=True)
class RetentionConfig:
    name: str
    keep_last: int = 0
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    keep_within: str | None = None
    keep_tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckConfig:
    schedule: str | None = None  # OnCalendar for a standalone check; None = only after runs
    read_data_subset: str | None = None  # "5%" or "n/t"; None = structure only
    enabled: bool = True


@dataclass(frozen=True)
class DrillConfig:
    schedule: str | None = None
    files: int = 20
    bytes_percent: float = 0.0
    command: str = ""  # application check run on the restored data ("" = none)
    repositories: tuple[str, ...] = ()  # empty = primary and every mirror


@dataclass(frozen=True)
class HooksConfig:
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    on_failure: tuple[str, ...] = ()
    pre_snapshot: tuple[str, ...] = ()  # just before the filesystem snapshots (flush, freeze)
    post_snapshot: tuple[str, ...] = ()  # just after them, even when one failed (thaw)
    stop: tuple[str, ...] = ()  # before a rollback swaps the live state
    start: tuple[str, ...] = ()  # after it


@dataclass(frozen=True)
class JobConfig:
    name: str
    repository: str
    paths: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    exclude_files: tuple[str, ...] = ()
    exclude_caches: bool = False
    one_file_system: bool = False
    tags: tuple[str, ...] = ()
    mirrors: tuple[str, ...] = ()
    retention: str | None = None
    schedule: str | None = None
    check: CheckConfig = field(default_factory=CheckConfig)
    drill: DrillConfig | None = None
    hooks: HooksConfig = field(default_factory=HooksConfig)
    stdin_command: tuple[str, ...] = ()
    stdin_filename: str = "stdin"
    host: str | None = None
    snapshot: str | None = None  # btrfs | zfs | lvm | auto: back up from a filesystem snapshot
    snapshot_keep: int = 0  # local snapshots kept after the run (for rollback)
    snapshot_dir: str = ""  # "" = .amber-snapshots at the top of each filesystem
    databases: tuple[DatabaseSpec, ...] = ()
    anomaly: Thresholds = field(default_factory=Thresholds)  # [anomaly] with [jobs.NAME.anomaly] applied
    watch: bool = False  # the daemon keeps an `amber watch` running for this job
    watch_interval: float = 60.0  # seconds from a change to the start of its snapshot, at most
    watch_rescan: float = 86400.0  # seconds between full rescans while watching


@dataclass(frozen=True)
class Config:
    source: str
    repositories: dict[str, RepositoryConfig]
    retention: dict[str, RetentionConfig]
    jobs: dict[str, JobConfig]
    limits: LimitsConfig
    notify: tuple[NotifyConfig, ...]
    alerts: AlertsConfig
    metrics: MetricsConfig
    state: StateConfig
    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    anomaly: Thresholds = field(default_factory=Thresholds)
    reports: dict[str, ReportConfig] = field(default_factory=dict)  # [reports.daily|weekly|monthly]
    web: WebConfig = field(default_factory=WebConfig)

    @property
    def state_dir(self) -> str:
        return os.path.dirname(self.state.path)

    def job(self, name: str) -> JobConfig:
        try:
            return self.jobs[name]
        except KeyError:
            known = ", ".join(sorted(self.jobs)) or "none"
            raise ConfigError(f"{self.source}: no job named {name!r} (jobs: {known})") from None


def load_config(path: str | None = None) -> Config:
    """Read and validate ``path`` (default: the user's config directory)."""
    path = path or default_config_path()
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{path}: cannot read config file: {exc.strerror}; this command needs a config "
            "(docs/config.md has a complete example), or --config FILE"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid UTF-8 (byte {exc.start})") from exc
    return parse_config(text, path)


def parse_config(text: str, source: str = "config.toml") -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        where = f"{source}:{match.group(1)}" if match else source
        reason = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", str(exc))
        raise ConfigError(f"{where}: invalid TOML: {reason}") from exc
    r = Reader(text, source)
    r.only(raw, (), ("repositories", "retention", "jobs", "limits", "notify", "alerts", "metrics", "state",
                     "catalog", "anomaly", "reports", "web"))  # fmt: skip
    repos = {name: parse_repository(r, name, t) for name, t in r.tables(raw, ("repositories",))}
    policies = {name: _retention(r, name, t) for name, t in r.tables(raw, ("retention",))}
    anomaly = parse_anomaly(r, r.table(raw, ("anomaly",)), ("anomaly",), Thresholds())
    jobs = {name: _job(r, name, t, repos, policies, anomaly) for name, t in r.tables(raw, ("jobs",))}
    notify = tuple(parse_notify(r, i, t) for i, t in enumerate(r.table_list(raw, ("notify",))))
    return Config(
        source=source,
        repositories=repos,
        retention=policies,
        jobs=jobs,
        limits=parse_limits(r, r.table(raw, ("limits",))),
        notify=notify,
        alerts=parse_alerts(r, r.table(raw, ("alerts",))),
        metrics=parse_metrics(r, r.table(raw, ("metrics",))),
        state=parse_state(r, r.table(raw, ("state",))),
        catalog=parse_catalog(r, r.table(raw, ("catalog",))),
        anomaly=anomaly,
        reports=parse_reports(r, r.table(raw, ("reports",)), notify),
        web=parse_web(r, r.table(raw, ("web",))),
    )


def _retention(r: Reader, name: str, t: dict[str, Any]) -> RetentionConfig:
    p = ("retention", name)
    counts = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")
    r.only(t, p, (*counts, "keep_within", "keep_tags"))
    values = {k: r.integer(t, p, k, 0) or 0 for k in counts}
    within = r.string(t, p, "keep_within")
    if within is not None and not cc.RETENTION_DURATION.fullmatch(within):
        r.fail((*p, "keep_within"), f"expected a duration like 1y2m3d4h, got {within!r}")
    tags = r.strings(t, p, "keep_tags")
    if not any(values.values()) and within is None and not tags:
        r.fail(p, "policy keeps nothing: set at least one keep_* key")
    return RetentionConfig(name=name, keep_within=within, keep_tags=tags, **values)


def _job(
    r: Reader, name: str, t: dict[str, Any], repos: dict[str, RepositoryConfig],
    policies: dict[str, RetentionConfig], anomaly: Thresholds,
) -> JobConfig:  # fmt: skip
    p = ("jobs", name)
    r.only(t, p, ("paths", "exclude", "exclude_files", "exclude_caches", "one_file_system", "tags",
                  "repository", "mirrors", "retention", "schedule", "check", "drill", "hooks",
                  "stdin_command", "stdin_filename", "host", "snapshot", "snapshot_keep",
                  "snapshot_dir", "databases", "anomaly", "watch", "watch_interval",
                  "watch_rescan"))  # fmt: skip
    paths = r.strings(t, p, "paths")
    stdin_command = r.strings(t, p, "stdin_command")
    dbs = databases(r, t, p)
    if not paths and not stdin_command and not dbs:
        r.fail(p, "a job needs paths, databases or stdin_command")
    if (paths or dbs) and stdin_command:
        r.fail((*p, "stdin_command"), "give either paths/databases or stdin_command, not both")
    repository = r.string(t, p, "repository")
    if repository is None:
        if len(repos) != 1:
            r.fail(p, "missing key 'repository'")
        repository = next(iter(repos))
    r.known((*p, "repository"), repository, repos, "repository")
    mirrors = r.strings(t, p, "mirrors")
    for i, mirror in enumerate(mirrors):
        r.known((*p, "mirrors", i), mirror, repos, "repository")
        if mirror == repository:
            r.fail((*p, "mirrors"), f"mirror {mirror!r} is the job's own repository")
    retention = r.string(t, p, "retention")
    if retention is not None:
        r.known((*p, "retention"), retention, policies, "retention policy")
    drill_t = r.table(t, (*p, "drill"), present=True)
    snapshot = r.choice(t, p, "snapshot", SNAPSHOT_KINDS)
    if snapshot and stdin_command:
        r.fail((*p, "snapshot"), "a filesystem snapshot needs paths, not stdin_command")
    if snapshot and not paths:
        r.fail((*p, "snapshot"), "a filesystem snapshot needs paths (databases are dumped, not snapshotted)")
    if snapshot and (not re.fullmatch(r"[A-Za-z0-9_.+]+(-[A-Za-z0-9_.+]+)*", name) or "pre-rollback" in name):
        r.fail(p, "a job with snapshot = ... needs a name of letters, digits, '_', '.', '+' and single '-'")
    watch = r.boolean(t, p, "watch")
    if watch and (stdin_command or dbs or snapshot or not paths):
        r.fail((*p, "watch"), "watch protects a job's paths: not with stdin_command, databases or snapshot")
    return JobConfig(
        name=name,
        repository=repository,
        paths=tuple(cc.expand(x) for x in paths),
        exclude=tuple(cc.expand(x) if x.startswith("~") else x for x in r.strings(t, p, "exclude")),
        exclude_files=tuple(cc.expand(x) for x in r.strings(t, p, "exclude_files")),
        exclude_caches=r.boolean(t, p, "exclude_caches"),
        one_file_system=r.boolean(t, p, "one_file_system"),
        tags=r.strings(t, p, "tags"),
        mirrors=mirrors,
        retention=retention,
        schedule=r.calendar(t, p, "schedule"),
        check=_check(r, r.table(t, (*p, "check")), (*p, "check")),
        drill=_drill(r, drill_t, (*p, "drill"), repos) if drill_t is not None else None,
        hooks=_hooks(r, r.table(t, (*p, "hooks")), (*p, "hooks")),
        stdin_command=stdin_command,
        stdin_filename=r.string(t, p, "stdin_filename") or "stdin",
        host=r.string(t, p, "host"),
        snapshot=snapshot,
        snapshot_keep=r.integer(t, p, "snapshot_keep", 0, 1000) or 0,
        snapshot_dir=r.string(t, p, "snapshot_dir") or "",
        databases=dbs,
        anomaly=parse_anomaly(r, r.table(t, (*p, "anomaly")), (*p, "anomaly"), anomaly),
        watch=watch,
        watch_interval=_seconds(r, t, p, "watch_interval", "60s", 1.0),
        watch_rescan=_seconds(r, t, p, "watch_rescan", "1d", 60.0),
    )


def _seconds(r: Reader, t: dict[str, Any], p: cc.KeyPath, key: str, default: str, least: float) -> float:
    text = r.string(t, p, key) or default
    seconds = cc.parse_duration(text)
    if seconds is None or seconds < least:
        r.fail((*p, key), f"expected a duration of at least {least:g}s like '30s' or '5m', got {text!r}")
    return seconds


def _check(r: Reader, t: dict[str, Any], p: cc.KeyPath) -> CheckConfig:
    r.only(t, p, ("schedule", "read_data_subset", "enabled"))
    subset = r.string(t, p, "read_data_subset")
    if subset is not None and not cc.SUBSET.fullmatch(subset):
        r.fail((*p, "read_data_subset"), f"expected a percentage like '5%' or 'n/t', got {subset!r}")
    return CheckConfig(
        schedule=r.calendar(t, p, "schedule"),
        read_data_subset=subset,
        enabled=r.boolean(t, p, "enabled", True),
    )


def _drill(r: Reader, t: dict[str, Any], p: cc.KeyPath, repos: dict[str, RepositoryConfig]) -> DrillConfig:
    r.only(t, p, ("schedule", "files", "bytes_percent", "command", "repositories"))
    names = r.strings(t, p, "repositories")
    for i, name in enumerate(names):
        r.known((*p, "repositories", i), name, repos, "repository")
    files = r.integer(t, p, "files", 0)
    return DrillConfig(
        schedule=r.calendar(t, p, "schedule"),
        files=20 if files is None else files,
        bytes_percent=r.number(t, p, "bytes_percent", 0, 100) or 0.0,
        command=r.string(t, p, "command") or "",
        repositories=names,
    )


def _hooks(r: Reader, t: dict[str, Any], p: cc.KeyPath) -> HooksConfig:
    r.only(t, p, ("before", "after", "on_failure", "pre_snapshot", "post_snapshot", "stop", "start"))
    return HooksConfig(*(r.strings(t, p, k) for k in ("before", "after", "on_failure", "pre_snapshot",
                                                        "post_snapshot", "stop", "start")))  # fmt: skip
