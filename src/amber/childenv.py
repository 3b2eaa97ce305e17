"""The environment of child processes that run user commands, without amber's secrets.

Hooks, ``--stdin-from-command``, drill commands, password commands and the
rclone server are separate programs: none of them needs the repository
password, and a hook that logs its environment must not leak it. Removed:
``AMBER_PASSWORD``, ``AMBER_PASSWORD_FILE``, ``AMBER_PASSWORD_COMMAND``, and
every variable registered with :func:`register_secret` (a configured
repository's ``password_env``). ``AMBER_REPOSITORY`` is kept with its URL
credentials masked. Cloud credentials the user exported (``AWS_*``,
``RCLONE_CONFIG_*``) are the user's own and stay: a hook may need them.

Outside the layer stack (like :mod:`amber.errors`): every layer spawns children.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping

from amber.redact import mask_url

SECRET_VARIABLES = frozenset({"AMBER_PASSWORD", "AMBER_PASSWORD_FILE", "AMBER_PASSWORD_COMMAND"})
_registered: set[str] = set()
_lock = threading.Lock()


def register_secret(name: str) -> None:
    """Never pass variable ``name`` to a child (it holds a password)."""
    with _lock:
        _registered.add(name)


def secret_variables() -> frozenset[str]:
    with _lock:
        return SECRET_VARIABLES | _registered


def child_env(
    extra: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``base`` (default: this process's environment) without secrets, plus ``extra``."""
    hidden = secret_variables()
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in hidden}
    if "AMBER_REPOSITORY" in env:
        env["AMBER_REPOSITORY"] = mask_url(env["AMBER_REPOSITORY"])
    env.update(extra or {})
    return env
