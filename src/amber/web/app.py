"""The dashboard's routes: overview, job history, login, run now, JSON status, events, health,
/metrics; the other pages are in ``web.pages``.

Pages render on the server and work without JavaScript (forms POST and
redirect); htmx and its SSE extension, served from ``static/``, only swap in
live progress. Nothing secret reaches a page: repositories are shown by name,
run records are masked when stored, and messages pass through ``redact``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from amber.errors import AmberError, ConfigError
from amber.ops import board
from amber.ops.config.model import Config
from amber.ops.verdict import age_text
from amber.printable import printable
from amber.redact import redact
from amber.services import session
from amber.services.operations import RUNNING
from amber.web import archive_pages, pages, report_pages
from amber.web.archive_pages import WalProbe
from amber.web.live import ACTIONS, Event, EventHub, LiveRun, Runner, event_name
from amber.web.recorded import RecordedRuns
from amber.web.security import COOKIE, Guard, GuardMiddleware

HERE = Path(__file__).parent
PING_SECONDS = 15.0


@dataclass
class Dashboard:
    config: Config
    guard: Guard
    hub: EventHub
    runner: Runner
    templates: Environment
    wal: WalProbe
    recorded: RecordedRuns  # runs of other processes, from the state database; started by the server


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else "-"


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True))
    env.filters.update(when=_when, size=pages.size_text, seconds=pages.seconds_text, redact=redact,
                       age=age_text, event_name=event_name)  # fmt: skip
    return env


class AsciiJSON(JSONResponse):
    """JSON with non-ASCII escaped: a name's undecodable bytes (lone surrogates) stay ``\\udcXX``."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")


def _render(d: Dashboard, request: Request, name: str, status: int = 200, **values: Any) -> HTMLResponse:
    session = d.guard.session_of(request)
    nav = {"nav_local": any(j.snapshot for j in d.config.jobs.values()), "nav_wal": d.wal.known()}
    html = d.templates.get_template(name).render(csrf=session.csrf if session else "", **nav, **values)
    return HTMLResponse(printable(html), status)  # run errors quote names, undecodable bytes included


def _fragment(d: Dashboard, live: LiveRun) -> str:
    return printable(d.templates.get_template("_progress.html").render(live=live))


def build(config: Config, guard: Guard, passwords: session.PasswordSource | None = None) -> Starlette:
    """``passwords``: the fallback for repositories without their own (the CLI's -p, AMBER_PASSWORD)."""
    hub = EventHub()
    dash: Dashboard
    runner = Runner(config, lambda live: hub.publish(Event(event_name(live.job), _fragment(dash, live))),
                    passwords)  # fmt: skip
    runner.watch(RUNNING)  # jobs this process runs otherwise (the daemon's) show live too
    dash = Dashboard(config, guard, hub, runner, _environment(), WalProbe(config), RecordedRuns(runner))
    dash.wal.start()  # which repositories hold WAL: the navigation links the WAL page only then

    def page(request: Request, name: str, **values: Any) -> Response:
        return _render(dash, request, name, **values)

    async def overview(request: Request) -> Response:
        jobs = await asyncio.to_thread(board.board, config)
        return _render(dash, request, "overview.html", jobs=jobs, live=runner.live)

    async def job_page(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in config.jobs:
            return PlainTextResponse("no such job", 404)
        statuses = await asyncio.to_thread(board.board, config, None, False)
        status = next(s for s in statuses if s.name == name)
        runs = await asyncio.to_thread(board.job_runs, config, name, 100)
        since = time.time() - 365 * 86400
        samples = await asyncio.to_thread(pages.usage_points, config, config.jobs[name].repository, since)
        return _render(dash, request, "job.html", job=status, runs=runs, live=runner.live.get(name),
                       charts=pages.job_charts(runs, samples))  # fmt: skip

    async def act(request: Request) -> Response:
        name, action = request.path_params["name"], request.path_params["action"]
        if action not in ACTIONS:
            return PlainTextResponse("unknown action", 404)
        try:
            started = runner.start(name, action)
        except ConfigError:
            return PlainTextResponse("no such job", 404)
        if request.headers.get("accept", "").startswith("application/json"):
            body = {"job": name, "action": action, "started": started}
            if not started:
                return AsciiJSON({**body, "reason": "already running"}, 409)
            return AsciiJSON(body, 202)
        return RedirectResponse(f"/jobs/{name}", 303)

    async def login(request: Request) -> Response:
        token = request.query_params.get("token")
        if token is None:
            return _render(dash, request, "login.html")
        if not guard.token_ok(token):
            return _render(dash, request, "login.html", 401, failed=True)
        sid, _session = guard.sessions.create()
        response = RedirectResponse("/", 303)
        guard.set_cookie(response, sid)
        return response

    async def logout(request: Request) -> Response:
        guard.sessions.end(request.cookies.get(COOKIE))
        response = RedirectResponse("/login", 303)
        guard.clear_cookie(response)
        return response

    async def metrics(request: Request) -> Response:
        return await _metrics(config)

    async def api_status(request: Request) -> Response:
        jobs = await asyncio.to_thread(board.board, config)
        return AsciiJSON({"version": 1, "jobs": [_api_job(j.as_dict(), runner) for j in jobs]})

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def events(request: Request) -> Response:
        return StreamingResponse(_stream(request, hub), media_type="text/event-stream",
                                 headers={"x-accel-buffering": "no"})  # fmt: skip

    routes = [
        Route("/", overview), Route("/jobs/{name}", job_page),
        Route("/jobs/{name}/{action}", act, methods=["POST"]),
        Route("/login", login),
        Route("/logout", logout, methods=["POST"]), Route("/metrics", metrics),
        Route("/api/v1/status", api_status), Route("/healthz", healthz),
        Route("/events", events), Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        *pages.routes(config, runner.passwords, page), *report_pages.routes(config, page),
        *archive_pages.routes(config, runner.passwords, page, dash.wal),
    ]  # fmt: skip
    app = Starlette(routes=routes)
    app.add_middleware(GuardMiddleware, guard=guard)
    app.state.dashboard = dash
    return app


async def _metrics(config: Config) -> Response:
    """Prometheus exposition, built fresh from the state database (the daemon's former /metrics)."""
    from prometheus_client.exposition import CONTENT_TYPE_LATEST  # only when scraped

    from amber.ops import metrics

    try:
        body = await asyncio.to_thread(lambda: metrics.exposition(metrics.build(config, config.state.path)))
    except AmberError as exc:
        return PlainTextResponse(f"# amber: {redact(exc.message)}\n", 500)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _api_job(job: dict[str, Any], runner: Runner) -> dict[str, Any]:
    live = runner.live.get(job["name"])
    if live is not None:
        job["live"] = {"status": live.status, "phase": redact(live.phase), "files": live.files,
                       "bytes": live.bytes, "errors": live.errors, "rate": live.rate}  # fmt: skip
        job["running"] = job["running"] or live.status == "running"
    return job


def _sse(event: Event) -> str:
    data = "".join(f"data: {line}\n" for line in event.data.splitlines() or [""])
    return f"event: {event.name}\n{data}\n"


async def _stream(request: Request, hub: EventHub) -> AsyncIterator[str]:
    queue = hub.subscribe()
    try:
        yield "retry: 3000\n\n"
        while not await request.is_disconnected():
            try:
                event = await asyncio.wait_for(queue.get(), PING_SECONDS)
            except TimeoutError:
                yield ": ping\n\n"
                continue
            if event is None:
                return
            yield _sse(event)
    finally:
        hub.unsubscribe(queue)
