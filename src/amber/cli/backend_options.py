"""Global options that shape every backend: bandwidth limits and ``-o key=value``.

They are applied as storage wrappers by ``open_backend`` (docs/backends.md), for
every repository the command opens (``copy`` source and destinations too). The
flags collect into the click context's ``meta``; the ``cli`` group puts the
result into the command's operation context (no process-wide state).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

import click

from amber.errors import UsageError
from amber.storage.url import BackendOptions, parse_extra_options

F = TypeVar("F", bound=Callable[..., Any])
_KEY = "amber.backend_options"


def _limit(field: str) -> Callable[[click.Context, click.Parameter, float | None], None]:
    def apply(ctx: click.Context, param: click.Parameter, value: float | None) -> None:
        if value is not None and value <= 0:
            raise click.BadParameter("must be a positive number of KiB/s")
        current = given_options(ctx)
        if field == "limit_upload_kib":
            ctx.meta[_KEY] = replace(current, limit_upload_kib=value)
        else:
            ctx.meta[_KEY] = replace(current, limit_download_kib=value)

    return apply


def _extra(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> None:
    try:
        extra = parse_extra_options(value)
    except UsageError as exc:
        raise click.BadParameter(exc.message) from exc
    ctx.meta[_KEY] = replace(given_options(ctx), extra=extra)


def given_options(ctx: click.Context) -> BackendOptions:
    """The backend options the global flags asked for (defaults when none were given)."""
    found = ctx.meta.get(_KEY)
    return found if isinstance(found, BackendOptions) else BackendOptions()


def backend_option_flags(f: F) -> F:
    f = click.option(
        "-o", "--option", "backend_extra", multiple=True, metavar="KEY=VALUE", expose_value=False,
        callback=_extra, help="Backend option, e.g. connections=8, timeout=60, s3.lock-mode=governance.",
    )(f)  # fmt: skip
    f = click.option(
        "--limit-download", type=float, metavar="KiB/s", envvar="AMBER_LIMIT_DOWNLOAD", expose_value=False,
        callback=_limit("limit_download_kib"), help="Limit download bandwidth (KiB/s).",
    )(f)  # fmt: skip
    f = click.option(
        "--limit-upload", type=float, metavar="KiB/s", envvar="AMBER_LIMIT_UPLOAD", expose_value=False,
        callback=_limit("limit_upload_kib"), help="Limit upload bandwidth (KiB/s).",
    )(f)  # fmt: skip
    return f
