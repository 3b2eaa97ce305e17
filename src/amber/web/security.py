"""Who may talk to the dashboard: login token, sessions, Host allowlist, CSRF and Origin, headers.

One random token (file mode 0600) logs a browser in through ``/login?token=``
and authenticates API clients and Prometheus as ``Authorization: Bearer``. A
login creates a server-side session (cookie HttpOnly, SameSite=Strict, Secure
under TLS; kept in SQLite so a restart keeps it) with its own CSRF token.
Every request must name an allowed Host (DNS rebinding); every POST from a
session carries the CSRF token and a same-origin Origin.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from amber.errors import StateError
from amber.ops.private import private_dir, write_private
from amber.ops.state import secure_database

COOKIE = "amber_session"
SESSION_SECONDS = 12 * 3600
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
CSP_HEADER = "content-security-policy"
HEADERS = {
    CSP_HEADER: CSP,
    "x-content-type-options": "nosniff",
    # never leak the login URL (token) to another site; "no-referrer" would make POSTs send Origin: null
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}
PUBLIC_PATHS = ("/login", "/healthz", "/static/")
MAX_BODY = 64 * 1024  # the dashboard's forms hold a CSRF token; nothing it accepts is larger
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def token_path(state_dir: str) -> str:
    return os.path.join(state_dir, "web-token")


def load_token(state_dir: str, rotate: bool = False) -> str:
    """The dashboard token, created on first start (or replaced by ``rotate``) with mode 0600."""
    path = token_path(state_dir)
    if not rotate:
        try:
            with open(path, encoding="ascii") as f:
                token = f.read().strip()
            if len(token) >= 32:
                return token
        except FileNotFoundError:
            pass
    private_dir(state_dir)
    token = secrets.token_urlsafe(32)
    write_private(path, token.encode() + b"\n")
    return token


@dataclass
class Session:
    csrf: str
    created: float = field(default_factory=time.time)


_SCHEMA = "CREATE TABLE IF NOT EXISTS sessions (id_hash TEXT PRIMARY KEY, csrf TEXT NOT NULL, created REAL)"


def sessions_path(state_dir: str) -> str:
    return os.path.join(state_dir, "web-sessions.db")


class Sessions:
    """Logged-in browsers, in SQLite (file 0600), so they survive a restart of the server.

    Only the SHA-256 of a session ID is stored: reading the file gives no usable
    cookie. Sessions end after ``SESSION_SECONDS``, at logout, and when the token
    is rotated. ``path`` None keeps them in memory (tests, one process).
    """

    def __init__(self, path: str | None = None) -> None:
        if path is not None:
            private_dir(os.path.dirname(os.path.abspath(path)))
            secure_database(path)
        try:
            self._db = sqlite3.connect(path or ":memory:", timeout=10, check_same_thread=False,
                                       isolation_level=None)  # fmt: skip
            self._db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise StateError(f"web sessions {path}: {exc}") from exc
        self._lock = threading.Lock()

    def _run(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        try:
            with self._lock:
                return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StateError(f"web sessions: {exc}") from exc

    def create(self) -> tuple[str, Session]:
        sid, session = secrets.token_urlsafe(32), Session(secrets.token_urlsafe(32))
        self._run("DELETE FROM sessions WHERE created < ?", (time.time() - SESSION_SECONDS,))
        self._run("INSERT INTO sessions VALUES (?, ?, ?)", (_digest(sid), session.csrf, session.created))
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        rows = self._run("SELECT csrf, created FROM sessions WHERE id_hash = ?", (_digest(sid),))
        if not rows:
            return None
        csrf, created = rows[0]
        if time.time() - float(created) > SESSION_SECONDS:  # type: ignore[arg-type]
            self.end(sid)
            return None
        return Session(str(csrf), float(created))  # type: ignore[arg-type]

    def end(self, sid: str | None) -> None:
        if sid:
            self._run("DELETE FROM sessions WHERE id_hash = ?", (_digest(sid),))

    def end_all(self) -> None:
        self._run("DELETE FROM sessions")

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


@dataclass
class Guard:
    """The policy the middleware enforces; ``allowed_hosts`` are host names without ports."""

    token: str
    allowed_hosts: frozenset[str]
    tls: bool = False
    sessions: Sessions = field(default_factory=Sessions)

    def token_ok(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(str(given).encode(), self.token.encode())

    def session_of(self, request: Request) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE))

    def bearer_ok(self, request: Request) -> bool:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self.token_ok(value.strip())

    def clear_cookie(self, response: Response) -> None:
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=self.tls)

    def set_cookie(self, response: Response, sid: str) -> None:
        response.set_cookie(COOKIE, sid, max_age=SESSION_SECONDS, httponly=True, samesite="strict",
                            secure=self.tls, path="/")  # fmt: skip


def allowed_hosts(listen_host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The listen address, ``extra``, loopback names for loopback; this machine's names for 0.0.0.0/::."""
    host = listen_host.strip("[]")
    names = {host, *extra}
    if host in LOOPBACK_NAMES or host.startswith("127."):
        names.update(LOOPBACK_NAMES)
    if host in ("0.0.0.0", "::"):  # every interface: reachable by this machine's names (others: --allow-host)
        names.update({*LOOPBACK_NAMES, socket.gethostname(), socket.getfqdn()})
    return frozenset(n.lower() for n in names)


def host_name(host_header: str) -> str:
    """``example.org:8080`` -> ``example.org``; ``[::1]:8080`` -> ``::1``."""
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0].lower()
    return host_header.rpartition(":")[0].lower() if host_header.count(":") == 1 else host_header.lower()


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:  # non-browser clients send none; browsers also say where a request came from
        return request.headers.get("sec-fetch-site", "same-origin") == "same-origin"
    expected = f"{'https' if request.url.scheme == 'https' else 'http'}://{request.headers.get('host', '')}"
    return origin.lower() == expected.lower()


Handler = Callable[[Request], Awaitable[Response]]


class GuardMiddleware:
    """Host allowlist, then authentication, then CSRF/Origin for POST; headers on every response."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app, self.guard = app, guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        refusal, session = self._refusal(request)
        if refusal is None and request.method not in ("GET", "HEAD"):
            body = await _bounded_body(request)  # bounded, and only once the request is let in
            if body is None:
                refusal = PlainTextResponse(f"request body over {MAX_BODY} bytes", 413)
            elif session is not None and not _csrf_ok(request, body, session):
                refusal = PlainTextResponse("missing or wrong CSRF token", 403)
            else:
                receive = _replay(body)  # the handler reads the body the check read

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                # a route may narrow the CSP for its response (the report page's inline styles)
                own_csp = any(k.lower() == CSP_HEADER.encode() for k, _ in headers)
                added = [(k, v) for k, v in HEADERS.items() if not (own_csp and k == CSP_HEADER)]
                headers += [(k.encode(), v.encode()) for k, v in added]
                message = {**message, "headers": headers}
            await send(message)

        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
        else:
            await self.app(scope, receive, send_with_headers)

    def _refusal(self, request: Request) -> tuple[Response | None, Session | None]:
        """Why the request is refused (None: it is not) from its headers alone; and its session."""
        if host_name(request.headers.get("host", "")) not in self.guard.allowed_hosts:
            return PlainTextResponse("unknown Host header", 400), None
        path = request.url.path
        if any(path == p or (p.endswith("/") and path.startswith(p)) for p in PUBLIC_PATHS):
            return None, None
        session = self.guard.session_of(request)
        if session is None and not self.guard.bearer_ok(request):
            return PlainTextResponse("not logged in: open the login URL that 'amber web' printed", 401), None
        if request.method not in ("GET", "HEAD") and not _same_origin(request):
            return PlainTextResponse("cross-origin request refused", 403), None
        return None, session


async def _bounded_body(request: Request) -> bytes | None:
    """The request body, or None when it is (or says it is) over MAX_BODY."""
    try:
        if int(request.headers.get("content-length", "0")) > MAX_BODY:
            return None
    except ValueError:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    return bytes(body)


def _csrf_ok(request: Request, body: bytes, session: Session) -> bool:
    given = request.headers.get("x-csrf-token")
    if given is None:
        given = (parse_qs(body.decode(errors="replace")).get("csrf") or [""])[0]
    return hmac.compare_digest(given.encode(), session.csrf.encode())


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
