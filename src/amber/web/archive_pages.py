"""The dashboard's read-only pages of what lies beside the snapshots: local filesystem snapshots
(`amber local-snapshots`) and the PostgreSQL WAL archive (`amber pg list`).

The WAL page opens each repository that holds WAL (an argon2 derivation each),
so its view is kept for :data:`WAL_CACHE_SECONDS`, as the fleet page's is.
Which repositories hold WAL is asked of the storage alone (:class:`WalProbe`,
no password), in the background, so that the navigation links the page only
when there is something to show.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from amber.errors import AmberError
from amber.ops.config.model import Config
from amber.ops.localsnap import inventory
from amber.ops.localsnap.manager import ProviderFactory, system_providers
from amber.ops.wal_status import WalStatus, wal_status, with_wal
from amber.redact import redact
from amber.services import session
from amber.web.pages import Render

WAL_CACHE_SECONDS = 30.0
PROBE_SECONDS = 600.0  # how long "which repositories hold WAL" is believed


class WalProbe:
    """The configured repositories whose ``wal/`` holds objects, refreshed in the background."""

    def __init__(self, config: Config, max_age: float = PROBE_SECONDS) -> None:
        self.config, self.max_age = config, max_age
        self._names: list[str] = []
        self._at: float | None = None
        self._lock = threading.Lock()
        self._busy = False

    def refresh(self) -> list[str]:
        names = with_wal(self.config)
        with self._lock:
            self._names, self._at, self._busy = names, time.monotonic(), False
        return names

    def start(self) -> None:
        """Refresh in a thread unless one is running."""
        with self._lock:
            if self._busy:
                return
            self._busy = True
        threading.Thread(target=self._refresh_quietly, name="web-wal-probe", daemon=True).start()

    def _refresh_quietly(self) -> None:
        try:
            self.refresh()
        except Exception:  # a probe must never take the dashboard down; the page shows errors
            with self._lock:
                self._busy = False

    def known(self) -> bool:
        """Whether some repository held WAL at the last probe; starts a new one when that is old."""
        if self._at is None or time.monotonic() - self._at > self.max_age:
            self.start()
        return bool(self._names)


@dataclass
class LocalView:
    entries: list[inventory.Entry] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)  # jobs that take local snapshots
    problems: list[str] = field(default_factory=list)


def local_view(config: Config, providers: ProviderFactory = system_providers) -> LocalView:
    view = LocalView(jobs=[j.name for j in config.jobs.values() if j.snapshot])
    for job in view.jobs:
        try:
            view.entries += inventory.entries(config, job, providers)
        except AmberError as exc:
            view.problems.append(f"{job}: {redact(exc.message)}")
    view.entries.sort(key=lambda e: e.created, reverse=True)  # newest first
    return view


def wal_view(config: Config, passwords: session.PasswordSource, probe: WalProbe) -> list[WalStatus]:
    return [wal_status(config, name, passwords) for name in probe.refresh()]


def routes(config: Config, passwords: session.PasswordSource, render: Render, probe: WalProbe,
           providers: ProviderFactory = system_providers) -> list[Route]:  # fmt: skip
    cache: dict[str, tuple[float, list[WalStatus]]] = {}

    async def local_snapshots(request: Request) -> Response:
        view = await asyncio.to_thread(local_view, config, providers)
        return render(request, "local_snapshots.html", view=view)

    async def wal_page(request: Request) -> Response:
        hit = cache.get("view")
        old = hit is None or time.monotonic() - hit[0] > WAL_CACHE_SECONDS
        if hit is None or old or "refresh" in request.query_params:
            hit = (time.monotonic(), await asyncio.to_thread(wal_view, config, passwords, probe))
            cache["view"] = hit
        return render(request, "wal.html", repos=hit[1])

    return [Route("/local-snapshots", local_snapshots), Route("/wal", wal_page)]
