"""The dashboard's pages beyond the overview and the job: fleet, repositories, drills, audit log,
and the job page's charts.

Each page gathers its data in a thread (SQLite, repositories) and renders on
the server. Repositories are named, never shown by URL; texts from runs, drills
and the audit log pass ``redact`` in the templates.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from amber.ops.audit.chain import ChainVerdict
from amber.ops.audit.log import AuditLog, default_path
from amber.ops.config.model import Config
from amber.ops.drills.history import DrillHistory
from amber.ops.repo_status import repository_status
from amber.ops.reports.usage import UsageLog
from amber.ops.run.fleet import FleetView, fleet_view
from amber.ops.state import RunRecord
from amber.services import session
from amber.web.charts import Bar, Group, bar_chart, grouped_bar_chart, line_chart

Render = Callable[..., Response]  # (request, template, **values)
AUDIT_PAGE = 50
_SEARCHED = ("args", "user", "host", "repository", "error")
FLEET_CACHE_SECONDS = 30.0  # the fleet page opens every repository: not on every reload


def size_text(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def seconds_text(s: float) -> str:
    if s < 10:
        return f"{s:.1f} s"
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h"


def _label(run: RunRecord) -> str:
    return time.strftime("%m-%d %H:%M", time.localtime(run.started))


def _backup_details(run: RunRecord) -> dict[str, Any]:
    backup = next((d for d in run.destinations if d.step == "backup"), None)
    return backup.details if backup and isinstance(backup.details, dict) else {}


def _kind(status: str, details: dict[str, Any]) -> str:
    """The bar's classes: its status, and ``anomaly`` for a snapshot the ransomware check tagged."""
    anomaly = details.get("anomaly")
    flagged = isinstance(anomaly, dict) and anomaly.get("verdict") == "suspicious"
    return f"{status} anomaly" if flagged else status


def _sizes(details: dict[str, Any]) -> tuple[float, float]:
    """(logical, stored): the snapshot's file bytes, and what the run added to the repository
    after deduplication and compression; NaN when the run recorded neither (a failed backup)."""
    logical, stored = details.get("bytes"), details.get("data_added_stored")
    if isinstance(logical, int) and isinstance(stored, int):
        return float(logical), float(stored)
    return math.nan, math.nan


def job_charts(runs: Sequence[RunRecord], samples: Sequence[tuple[float, float]]) -> list[tuple[str, Markup]]:
    """Repository size over time, logical vs stored size, backup duration and files changed,
    oldest run first."""
    finished = [r for r in reversed(runs) if r.status != "running" and r.ended]
    changed = []
    for r in finished:
        details = _backup_details(r)
        new, modified = details.get("files_new", 0), details.get("files_changed", 0)
        count = float(new + modified) if isinstance(new, int) and isinstance(modified, int) else 0.0
        changed.append(Bar(_label(r), count, _kind(r.status, details)))
    durations = [Bar(_label(r), (r.ended or r.started) - r.started, _kind(r.status, _backup_details(r)))
                 for r in finished]  # fmt: skip
    sizes = [Group(_label(r), _sizes(d), _kind(r.status, d)) for r in finished if (d := _backup_details(r))]
    titles = (
        "Repository size (used on its destination, daily)",
        "Backup duration per run (red: failed, outlined: anomaly)",
        "Files new or changed per run",
        "Logical size (the snapshot's files) vs stored (added after deduplication and compression)",
    )
    return [
        (titles[0], line_chart(samples, titles[0], size_text)),
        (titles[3], grouped_bar_chart(sizes, ("logical", "stored"), titles[3], size_text)),
        (titles[1], bar_chart(durations, titles[1], seconds_text)),
        (titles[2], bar_chart(changed, titles[2], lambda v: f"{v:.0f}")),
    ]


def usage_points(config: Config, repository: str, since: float) -> list[tuple[float, float]]:
    return [(s.when, float(s.used)) for s in UsageLog(config.state.path).samples(repository, since)]


@dataclass(frozen=True)
class AuditPage:
    rows: list[dict[str, Any]]  # newest first
    page: int
    pages: int
    total: int  # records matching the filter


def audit_page(records: Sequence[dict[str, Any] | None], command: str = "", text: str = "",
               page: int = 1, per_page: int = AUDIT_PAGE) -> AuditPage:  # fmt: skip
    """Filter by command (exact) and text (in args, user, host, repository or error), newest first."""
    needle = text.lower()
    matching = []
    for r in reversed(records):
        if r is None or (command and r.get("command") != command):
            continue
        haystack = " ".join(str(r.get(k, "")) for k in _SEARCHED).lower()
        if needle and needle not in haystack:
            continue
        matching.append(r)
    pages = max(1, -(-len(matching) // per_page))
    page = min(max(page, 1), pages)
    return AuditPage(matching[(page - 1) * per_page : page * per_page], page, pages, len(matching))


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


class AuditCache:
    """The parsed log and its chain verdict, read again only when the file changes (size, mtime)."""

    def __init__(self) -> None:
        self._key: tuple[str, int, int] | None = None
        self._value: tuple[list[dict[str, Any] | None], ChainVerdict] | None = None
        self._lock = threading.Lock()

    def read(self, path: Path) -> tuple[list[dict[str, Any] | None], ChainVerdict]:
        try:
            st = path.stat()
            key = (str(path), st.st_size, st.st_mtime_ns)
        except OSError:
            key = (str(path), -1, -1)
        with self._lock:
            if key != self._key or self._value is None:
                log = AuditLog(path)
                self._value, self._key = (log.records(), log.verify()), key
            return self._value


def routes(config: Config, passwords: session.PasswordSource, render: Render) -> list[Route]:
    cache: dict[str, tuple[float, FleetView]] = {}
    audit_cache = AuditCache()

    async def fleet(request: Request) -> Response:
        hit = cache.get("view")
        old = hit is None or time.monotonic() - hit[0] > FLEET_CACHE_SECONDS
        if hit is None or old or "refresh" in request.query_params:
            hit = (time.monotonic(), await asyncio.to_thread(fleet_view, config, passwords))
            cache["view"] = hit
        return render(request, "fleet.html", view=hit[1], now=time.time())

    async def repositories(request: Request) -> Response:
        return render(request, "repositories.html", repos=sorted(config.repositories.items()))

    async def repository(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in config.repositories:
            return PlainTextResponse("no such repository", 404)
        status = await asyncio.to_thread(repository_status, config, name, passwords)
        points = [(s.when, float(s.used)) for s in status.samples]
        chart = line_chart(points, "Used on the destination (daily samples)", size_text)
        return render(request, "repository.html", repo=status, chart=chart)

    async def drills(request: Request) -> Response:
        history = DrillHistory(config.state.path)
        rows, stats = await asyncio.to_thread(lambda: (history.recent(limit=200), history.stats()))
        chart = bar_chart([Bar(time.strftime("%m-%d", time.localtime(r.started)), r.seconds,
                               "" if r.ok else "failed") for r in reversed(rows)],
                          "Drill duration (red: failed)", seconds_text)  # fmt: skip
        return render(request, "drills.html", drills=rows, stats=stats, chart=chart)

    async def audit(request: Request) -> Response:
        q = request.query_params
        records, verdict = await asyncio.to_thread(audit_cache.read, _audit_path(config))
        found = audit_page(records, q.get("command", ""), q.get("q", ""), _int(q.get("page"), 1))
        commands = sorted({str(r.get("command")) for r in records if r is not None})
        return render(request, "audit.html", found=found, verdict=verdict, commands=commands,
                      command=q.get("command", ""), q=q.get("q", ""))  # fmt: skip

    return [Route("/fleet", fleet), Route("/repos", repositories), Route("/repos/{name}", repository),
            Route("/drills", drills), Route("/audit", audit)]  # fmt: skip


def _audit_path(config: Config) -> Path:
    """Where `amber audit show` reads: AMBER_AUDIT_LOG, else the config's ``[state] audit_log``."""
    return default_path() if os.environ.get("AMBER_AUDIT_LOG") else Path(config.state.audit_log)
