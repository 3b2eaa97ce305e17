"""Pure: what ``amber config check`` shows of a ``[repositories.NAME]``, with secrets masked.

A backend option whose key names a secret (``*secret*``, ``*password*``,
``*passwd*``, ``*token*``, ``*credential*``) is shown as ``***``, and so is the
password of a URL's ``user:password@`` part (a ``rest:`` location may carry
one). Password sources are shown by kind only: a file's path and a variable's
name, never a command line (it might hold the password itself).
"""

from __future__ import annotations

from typing import Any

from amber import redact
from amber.ops.config.repos import RepositoryConfig

MASK = "***"
SECRET_WORDS = ("secret", "password", "passwd", "token", "credential")


def is_secret(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in SECRET_WORDS)


def mask_url(url: str) -> str:
    """``rest:https://me:pw@host/`` -> ``rest:https://me:***@host/`` (:func:`amber.redact.mask_url`)."""
    return redact.mask_url(url)


def shown_options(options: dict[str, str]) -> dict[str, str]:
    return {k: MASK if is_secret(k) else v for k, v in sorted(options.items())}


def password_source(repo: RepositoryConfig) -> str:
    if repo.password_file:
        return f"file {repo.password_file}"
    if repo.password_command:
        return "command"
    if repo.password_env:
        return f"env {repo.password_env}"
    return "global (AMBER_PASSWORD, --password-file or --password-command)"


def _limit(kib: int) -> str:
    return f"{kib} KiB/s" if kib else "none"


def repository_lines(repo: RepositoryConfig) -> list[str]:
    """The detail lines under a repository's summary line, each indented by two spaces."""
    lines = []
    if repo.options:
        lines.append("options: " + ", ".join(f"{k}={v}" for k, v in shown_options(repo.options).items()))
    if repo.limit_upload or repo.limit_download:
        lines.append(f"limits: upload {_limit(repo.limit_upload)}, download {_limit(repo.limit_download)}")
    lines.append(f"password: {password_source(repo)}")
    return ["  " + line for line in lines]


def repository_summary(repo: RepositoryConfig) -> dict[str, Any]:
    """The JSON form: everything ``repository_lines`` shows, as fields."""
    return {
        "url": mask_url(repo.url), "kind": repo.kind, "offsite": repo.offsite, "immutable": repo.immutable,
        "offline": repo.offline, "options": shown_options(repo.options), "limit_upload": repo.limit_upload,
        "limit_download": repo.limit_download, "password": password_source(repo).split(" ")[0],
    }  # fmt: skip
