"""The dashboard inside `amber daemon`: ``[web] listen`` serves the same app as `amber web`.

uvicorn runs in a thread of the daemon (it installs no signal handlers off the
main thread), so the daemon keeps its own SIGTERM handling: on stop, event
streams end, the server closes and "Run now" threads are waited for. The login
token is never logged: the note names the token file instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from amber.ops.config.model import Config
from amber.services.session import PasswordSource


class WebExtension:
    """A daemon extension (``ops.schedule.daemon.DaemonExtension``); imports the web stack only
    when ``[web] listen`` is set."""

    def __init__(self, passwords: PasswordSource, note: Callable[[str], None]) -> None:
        self.passwords, self.note = passwords, note
        self.served: Any = None  # web.server.Served once started

    def start(self, config: Config) -> None:
        if not config.web.listen:
            return
        from amber.web import server  # starlette, uvicorn, jinja2: only when serving
        from amber.web.security import token_path

        options = server.WebOptions.from_config(config.web)
        self.served = server.start(server.prepare(config, options, self.note, self.passwords))
        self.note(f"daemon: dashboard on {self.served.base} (log in with the token in "
                  f"{token_path(config.state_dir)}; /metrics takes it as a bearer token)")  # fmt: skip

    def tick(self, config: Config) -> None:
        pass

    def stop(self) -> None:
        if self.served is not None:
            self.served.stop()
            self.served = None
