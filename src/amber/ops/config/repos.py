"""``[repositories.NAME]`` tables of the config file, and the backend options each one opens with.

A repository may carry backend options, with the same keys and rules as
``-o KEY=VALUE`` (docs/backends.md), and its own bandwidth limits::

    [repositories.cloud]
    url = "s3:https://s3.eu-central-1.amazonaws.com/my-bucket/amber"
    options = { "s3.lock-mode" = "governance", "s3.lock-days" = 30 }
    limit_upload = 2048

Every use case that opens a configured repository (run, copies status, drill,
scheduled check, metrics) opens it with :func:`backend_options`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from amber.childenv import register_secret
from amber.errors import UsageError
from amber.ops.config import check as cc
from amber.ops.config.check import Reader
from amber.services import session
from amber.storage.url import BackendOptions, option_problem

MEDIA_KINDS = ("disk", "usb", "ssd", "nas", "cloud")
KEYS = ("url", "password_file", "password_command", "password_env", "kind", "offsite", "immutable",
        "offline", "capacity_alert_percent", "options", "limit_upload", "limit_download")  # fmt: skip


@dataclass(frozen=True)
class RepositoryConfig:
    name: str
    url: str
    password_file: str | None = None
    password_command: str | None = None
    password_env: str | None = None
    kind: str = "disk"
    offsite: bool = False
    immutable: bool = False
    offline: bool = False
    capacity_alert_percent: int | None = None
    options: dict[str, str] = field(default_factory=dict)  # backend options, as -o KEY=VALUE
    limit_upload: int = 0  # KiB/s, 0 = only the global limit
    limit_download: int = 0


def parse_repository(r: Reader, name: str, t: dict[str, Any]) -> RepositoryConfig:
    p = ("repositories", name)
    if "password" in t:
        r.fail((*p, "password"), "plain-text passwords are not accepted; use password_file, "
               "password_command or password_env")  # fmt: skip
    r.only(t, p, KEYS)
    sources = [k for k in ("password_file", "password_command", "password_env") if k in t]
    if len(sources) > 1:
        r.fail((*p, sources[1]), f"give only one of {', '.join(sources)}")
    url = r.string(t, p, "url", required=True)
    assert url is not None
    url = cc.expand(url)
    kind = r.choice(t, p, "kind", MEDIA_KINDS) or "disk"
    pw_file = r.string(t, p, "password_file")
    pw_env = r.string(t, p, "password_env")
    if pw_env:
        register_secret(pw_env)  # children (hooks, commands) never see it
    return RepositoryConfig(
        name=name,
        url=url,
        password_file=cc.expand(pw_file) if pw_file else None,
        password_command=r.string(t, p, "password_command"),
        password_env=pw_env,
        kind=kind,
        offsite=r.boolean(t, p, "offsite"),
        immutable=r.boolean(t, p, "immutable"),
        offline=r.boolean(t, p, "offline"),
        capacity_alert_percent=r.integer(t, p, "capacity_alert_percent", 1, 100),
        options=_options(r, t, p, url),
        limit_upload=r.integer(t, p, "limit_upload", 0) or 0,
        limit_download=r.integer(t, p, "limit_download", 0) or 0,
    )


def _options(r: Reader, t: dict[str, Any], p: cc.KeyPath, url: str) -> dict[str, str]:
    table = r.table(t, (*p, "options"))
    if not table:
        return {}
    options: dict[str, str] = {}
    for key, value in table.items():
        if isinstance(value, bool):
            options[key] = "true" if value else "false"
        elif isinstance(value, int | float | str):
            options[key] = str(value)
        else:
            r.fail((*p, "options", key), "expected a string, number or boolean")
    try:
        problem = option_problem(url, options)
    except UsageError as exc:  # the url itself is malformed
        r.fail((*p, "url"), exc.message)
    if problem is not None:
        r.fail((*p, "options", problem[0]), problem[1])
    return options


def _tighter(a: float | None, b: int) -> float | None:
    """Both limits hold, so the lower one applies (0 and None mean none)."""
    given = [x for x in (a, float(b) if b else None) if x]
    return min(given) if given else None


def backend_options(repo: RepositoryConfig, base: BackendOptions) -> BackendOptions:
    """``base`` (the command line's -o and --limit-*) with ``repo``'s own options and limits.

    A key given with -o wins over the same key in the config; of two bandwidth
    limits the lower one applies.
    """
    return replace(
        base,
        extra={**repo.options, **base.extra},
        limit_upload_kib=_tighter(base.limit_upload_kib, repo.limit_upload),
        limit_download_kib=_tighter(base.limit_download_kib, repo.limit_download),
    )


def config_passwords(repo: RepositoryConfig, fallback: session.PasswordSource) -> session.PasswordSource:
    """A configured repository's password source: its own variable, file or command, else ``fallback``."""
    if repo.password_env:
        return session.PasswordSource(password_env=repo.password_env)
    if repo.password_file or repo.password_command:
        return session.PasswordSource(repo.password_file, repo.password_command)
    return fallback
