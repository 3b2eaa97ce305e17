"""Serving the dashboard with uvicorn: listen address rules, TLS, the login URL, a background server.

Loopback by default. Any other address needs TLS (certificate and key) or
``insecure_no_tls``, which only warns: the login token would cross the network
in the clear.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette

from amber.errors import UsageError
from amber.ops.config.model import Config, WebConfig
from amber.services import session
from amber.web.app import build
from amber.web.security import Guard, Sessions, allowed_hosts, load_token, sessions_path

DEFAULT_LISTEN = "127.0.0.1:8080"


@dataclass(frozen=True)
class WebOptions:
    listen: str = DEFAULT_LISTEN
    tls_cert: str | None = None
    tls_key: str | None = None
    insecure_no_tls: bool = False
    rotate_token: bool = False
    extra_hosts: tuple[str, ...] = ()  # more Host names to accept (a reverse proxy's name)

    @classmethod
    def from_config(cls, web: WebConfig) -> WebOptions:
        """``[web]`` of the config file, for `amber daemon`."""
        return cls(web.listen or DEFAULT_LISTEN, web.tls_cert, web.tls_key, web.insecure_no_tls, False,
                   web.allow_hosts)  # fmt: skip


def split_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPV6]:PORT`` -> (host, port); a clear UsageError otherwise."""
    host, sep, port = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--listen {listen!r}: expected HOST:PORT, e.g. {DEFAULT_LISTEN}")
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen(host: str, options: WebOptions, warn: Callable[[str], None]) -> bool:
    """True when serving TLS; UsageError for a non-loopback address without TLS or the override."""
    if bool(options.tls_cert) != bool(options.tls_key):
        raise UsageError("web: give both --tls-cert and --tls-key")
    tls = bool(options.tls_cert)
    if not tls and not is_loopback(host):
        if not options.insecure_no_tls:
            raise UsageError(f"web: refusing to serve {host} without TLS; give --tls-cert/--tls-key, "
                             "listen on 127.0.0.1, or --insecure-no-tls")  # fmt: skip
        warn(f"warning: serving {host} without TLS: the login token and session cross the network in clear")
    return tls


@dataclass
class Served:
    app: Starlette
    server: uvicorn.Server
    sock: socket.socket
    url: str  # the login URL, token included
    thread: threading.Thread | None = None

    @property
    def base(self) -> str:
        """The address without the login path: safe to log."""
        return self.url.partition("/login")[0] + "/"

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def stop(self) -> None:
        self.app.state.dashboard.runner.close()  # stop watching this process's operations
        self.app.state.dashboard.recorded.stop()
        self.app.state.dashboard.hub.close()
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(10)
        self.app.state.dashboard.runner.join(60)
        self.app.state.dashboard.guard.sessions.close()


def prepare(config: Config, options: WebOptions, warn: Callable[[str], None],
            passwords: session.PasswordSource | None = None) -> Served:  # fmt: skip
    """Bind the socket and build the app; nothing is served until :func:`run` or :func:`start`."""
    host, port = split_listen(options.listen)
    tls = check_listen(host, options, warn)
    token = load_token(config.state_dir, options.rotate_token)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"web: cannot listen on {options.listen}: {exc.strerror}") from exc
    sock.listen(128)
    sock.set_inheritable(True)
    sessions = Sessions(sessions_path(config.state_dir))
    if options.rotate_token:
        sessions.end_all()
    guard = Guard(token, allowed_hosts(host, options.extra_hosts), tls, sessions)
    app = build(config, guard, passwords)
    cfg = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",  # no token in logs
                         ssl_certfile=options.tls_cert, ssl_keyfile=options.tls_key,
                         timeout_graceful_shutdown=2)  # fmt: skip
    server = uvicorn.Server(cfg)
    shown = f"[{host}]" if ":" in host else host
    url = f"{'https' if tls else 'http'}://{shown}:{sock.getsockname()[1]}/login?token={token}"
    app.state.dashboard.recorded.start()  # live views of runs other processes record
    return Served(app, server, sock, url)


def run(served: Served) -> None:
    """Serve in this thread until SIGINT/SIGTERM."""
    served.server.run(sockets=[served.sock])


def start(served: Served, timeout: float = 10.0) -> Served:
    """Serve in a background thread (uvicorn installs no signal handlers off the main thread)."""
    served.thread = threading.Thread(target=served.server.run, kwargs={"sockets": [served.sock]},
                                     name="amber-web", daemon=True)  # fmt: skip
    served.thread.start()
    deadline = time.monotonic() + timeout
    while not served.server.started:
        if time.monotonic() > deadline or not served.thread.is_alive():
            raise UsageError("web: the server did not start")
        time.sleep(0.02)
    return served
