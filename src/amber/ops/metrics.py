"""Prometheus metrics: a node_exporter textfile, or HTTP ``/metrics`` for the daemon.

Everything comes from the state database (runs and drills) and, when asked,
from the repositories themselves (stored size, snapshots, dedup ratio). A
fresh registry is built for every scrape, so values are never stale.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from amber.errors import AmberError, UsageError, from_os_error
from amber.ops.alerting.notify import disk_usage
from amber.ops.config.model import Config
from amber.ops.drills.history import DrillHistory
from amber.ops.state import RunRecord, StateDB
from amber.ops.watch.history import WatchHistory
from amber.repository import Repository
from amber.services.context import OperationContext
from amber.services.session import PasswordSource
from amber.storage import FileType

_HISTORY = 1000  # runs per job read for the counters


@dataclass(frozen=True)
class RepoStats:
    name: str
    up: bool
    stored_bytes: int = 0
    packs: int = 0
    snapshots: int = 0
    logical_bytes: int = 0  # sum of the snapshots' total sizes: what a full restore of each would write

    @property
    def dedup_ratio(self) -> float:
        return self.logical_bytes / self.stored_bytes if self.stored_bytes else 0.0


def repository_stats(repo: Repository, name: str) -> RepoStats:
    packs = list(repo.backend.list(FileType.PACK))
    errors: list[tuple[str, AmberError]] = []
    snaps = repo.snapshots(errors)
    return RepoStats(name, True, sum(p.size for p in packs), len(packs), len(snaps),
                     sum(s.summary.total_bytes for s in snaps.values()))  # fmt: skip


def configured_stats(
    config: Config, passwords: PasswordSource, ctx: OperationContext | None = None
) -> list[RepoStats]:
    """Open each configured, connected repository (shared lock) and measure it."""
    from amber.ops.run.steps import Repositories

    repos = Repositories(config, passwords, ctx)
    found = []
    for name, settings in sorted(config.repositories.items()):
        if settings.offline and not repos.present(name):
            continue
        try:
            with repos.open(name) as repo:
                found.append(repository_stats(repo, name))
        except AmberError:
            found.append(RepoStats(name, False))
    return found


class _Gauges:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._gauges: dict[str, Gauge] = {}

    def set(self, name: str, doc: str, value: float, **labels: str) -> None:
        gauge = self._gauges.get(name)
        if gauge is None:
            gauge = Gauge(name, doc, sorted(labels), registry=self.registry)
            self._gauges[name] = gauge
        (gauge.labels(**labels) if labels else gauge).set(value)


def build(config: Config | None, state_path: str, repo_stats: Iterable[RepoStats] = ()) -> CollectorRegistry:
    registry = CollectorRegistry()
    g = _Gauges(registry)
    db = StateDB(state_path)
    jobs = sorted(config.jobs) if config else sorted({r.job for r in db.runs(limit=_HISTORY)})
    watched = WatchHistory(state_path)
    for job in jobs:
        _job_metrics(g, db, job)
        _watch_metrics(g, watched, job)
    for s in DrillHistory(state_path).stats():
        r = s.repository
        g.set("amber_drills_total", "Restore drills run", s.total, repository=r)
        g.set("amber_drill_success_ratio", "Share of restore drills that passed", s.success_rate,
              repository=r)  # fmt: skip
        g.set("amber_drill_last_timestamp_seconds", "Start of the last restore drill", s.last_started,
              repository=r)  # fmt: skip
        g.set("amber_drill_last_success", "1 if the last restore drill passed", float(s.last_ok),
              repository=r)  # fmt: skip
        g.set("amber_drill_throughput_bytes_per_second", "Restore+verify rate of the last drill",
              s.last_throughput, repository=r)  # fmt: skip
        g.set("amber_drill_estimated_full_restore_seconds", "Estimated time to restore everything",
              s.last_estimated_full_seconds, repository=r)  # fmt: skip
    for st in repo_stats:
        r = st.name
        g.set("amber_repository_up", "1 if the repository could be opened", float(st.up), repository=r)
        if not st.up:
            continue
        g.set("amber_repository_size_bytes", "Bytes stored in packs", st.stored_bytes, repository=r)
        g.set("amber_repository_packs", "Pack files", st.packs, repository=r)
        g.set("amber_repository_snapshots", "Snapshots", st.snapshots, repository=r)
        g.set("amber_repository_dedup_ratio", "Sum of snapshot sizes / stored bytes", st.dedup_ratio,
              repository=r)  # fmt: skip
    if config:
        for name, settings in sorted(config.repositories.items()):
            usage = None if settings.offline else disk_usage(settings.url)
            if usage and usage[0]:
                g.set("amber_destination_used_ratio", "Used share of the destination's filesystem",
                      usage[1] / usage[0], repository=name)  # fmt: skip
    g.set("amber_metrics_generated_timestamp_seconds", "When these metrics were computed", time.time())
    return registry


def _job_metrics(g: _Gauges, db: StateDB, job: str) -> None:
    runs = db.runs(job, limit=_HISTORY)
    for status in ("success", "partial", "failed", "interrupted"):
        g.set("amber_job_runs", "Recorded runs by final status", sum(1 for r in runs if r.status == status),
              job=job, status=status)  # fmt: skip
    finished = [r for r in runs if r.status != "running"]
    if finished:
        last = finished[0]
        ended = last.ended or last.started
        g.set("amber_job_last_run_timestamp_seconds", "End of the last run", ended, job=job)
        ok = float(last.status == "success")
        g.set("amber_job_last_run_success", "1 if the last run succeeded", ok, job=job)
        g.set("amber_job_last_run_duration_seconds", "Duration of the last run", last.duration, job=job)
        g.set("amber_job_last_bytes_added", "Bytes added by the last run", last.bytes_added, job=job)
    success = next((r for r in finished if r.status == "success"), None)
    if success:
        g.set("amber_job_last_success_timestamp_seconds", "End of the last successful run",
              success.ended or success.started, job=job)  # fmt: skip
    _destination_metrics(g, finished)


def _watch_metrics(g: _Gauges, history: WatchHistory, job: str) -> None:
    """`amber watch`: the RPO achieved, from a change until its snapshot was on every destination."""
    rows = history.recent(job)
    if not rows:
        return
    g.set("amber_watch_last_rpo_seconds", "Change to snapshot on every destination, last watched snapshot",
          rows[0].seconds, job=job)  # fmt: skip
    g.set("amber_watch_max_rpo_seconds", "Worst change-to-safe time of the recent watched snapshots",
          max(r.seconds for r in rows), job=job)  # fmt: skip
    g.set("amber_watch_last_snapshot_timestamp_seconds", "When the last watched snapshot was safe",
          rows[0].committed, job=job)  # fmt: skip


def _destination_metrics(g: _Gauges, runs: list[RunRecord]) -> None:
    """Per destination (repository), over these runs: last success and error count."""
    errors: dict[str, int] = {}
    last_ok: dict[str, float] = {}
    for run in runs:
        for d in run.destinations:
            errors.setdefault(d.name, 0)
            if d.status == "failed":
                errors[d.name] += 1
            elif d.status in ("success", "partial") and d.name not in last_ok:
                last_ok[d.name] = run.ended or run.started
    for name, count in errors.items():
        g.set("amber_destination_errors", "Failed steps on this destination in recorded runs", count,
              repository=name)  # fmt: skip
    for name, when in last_ok.items():
        g.set("amber_destination_last_success_timestamp_seconds", "Last run with a successful step here",
              when, repository=name)  # fmt: skip


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


def write_textfile(path: str, data: bytes) -> None:
    """Atomically replace ``path`` (node_exporter must never read half a file)."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        os.makedirs(directory, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise from_os_error(exc, path) from exc


# -- HTTP /metrics ------------------------------------------------------------------
class MetricsServer:
    def __init__(self, server: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_metrics(port: int, produce: Callable[[], bytes], address: str = "127.0.0.1") -> MetricsServer:
    """Serve ``produce()`` at ``/metrics`` on a background thread; port 0 picks a free port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] not in ("/metrics", "/"):
                self.send_error(404)
                return
            try:
                body, status = produce(), 200
            except AmberError as exc:
                body, status = f"# amber: {exc.message}\n".encode(), 500
            self.send_response(status)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    try:
        server = ThreadingHTTPServer((address, port), Handler)
    except OSError as exc:
        raise UsageError(f"cannot listen on {address}:{port}: {exc.strerror}") from exc
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    return MetricsServer(server, thread)


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not port.isdigit():
        raise UsageError(f"metrics listen address must be HOST:PORT, got {listen!r}")
    return host or "127.0.0.1", int(port)


class MetricsExtension:
    """A daemon extension: ``/metrics`` on ``[metrics] listen`` for as long as the daemon runs."""

    def __init__(self) -> None:
        self._server: MetricsServer | None = None

    def start(self, config: Config) -> None:
        if config.metrics.listen:
            host, port = parse_listen(config.metrics.listen)
            self._server = serve_metrics(port, lambda: exposition(build(config, config.state.path)), host)

    def tick(self, config: Config) -> None:
        if config.metrics.textfile:
            write_textfile(config.metrics.textfile, exposition(build(config, config.state.path)))

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
