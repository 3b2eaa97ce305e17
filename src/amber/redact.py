"""Masking credentials in URLs and in text, before anything is printed, logged or stored.

One rule for every output (CLI, ``amber run``, notifications, the audit log,
the state database):

* ``user:password@`` becomes ``user:***@``.
* Query values whose name says secret (``token``, ``key``, ``password``,
  ``secret``, ``sig``, ``auth`` ...) become ``***``.
* A notification URL (``secret_path=True``) carries its token in the path
  (Telegram, Slack, Discord, healthchecks ping UUIDs). apprise's own privacy
  form (``url(privacy=True)``, e.g. ``tgram://1...N/…``) is used for the
  service schemes apprise knows, without its query string; any other URL, and
  the generic webhook and ntfy schemes (whose path apprise shows), keeps only
  its scheme, host and ``user:***@`` (``https://hc-ping.com/***``).

It sits outside the layer stack (like :mod:`amber.errors`) so that every layer
uses the same function.
"""

from __future__ import annotations

import re
import urllib.parse

MASK = "***"
SECRET_WORDS = ("secret", "password", "passwd", "pass", "token", "key", "credential", "sig", "auth", "pw")
_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^/@:\s]*):(?P<pw>[^/@\s]*)@", re.I)
_QUERY_SECRET = re.compile(
    r"(?P<name>[?&;](?:[\w.-]*?)(?:" + "|".join(SECRET_WORDS) + r")[\w.-]*=)(?P<value>[^&;#\s]*)", re.I
)
_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^\s\"'<>]+", re.I)
# Not apprise services, or apprise schemes whose privacy form keeps a path that is
# often the secret itself (webhook paths, ntfy topics).
_GENERIC_SCHEMES = frozenset(
    {"", "http", "https", "json", "jsons", "form", "forms", "xml", "xmls", "ntfy", "ntfys"}
)


def mask_url(url: str, *, secret_path: bool = False) -> str:
    """``url`` with its credentials masked; ``secret_path`` for notification and ping URLs."""
    if secret_path:
        return _mask_notify_url(url)
    masked = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", url)
    return _QUERY_SECRET.sub(lambda m: f"{m['name']}{MASK}", masked)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Free text (an error message, a log line) with every URL's credentials masked.

    ``secrets`` are notification URLs known to be in play: their full text, and
    the masked form's hidden parts, never survive.
    """
    for url in secrets:
        if url:
            text = text.replace(url, mask_url(url, secret_path=True))
            for piece in _secret_pieces(url):  # e.g. a bot token inside the service's API URL
                text = text.replace(piece, MASK)
    return _URL.sub(lambda m: mask_url(m.group(0)), text)


def _secret_pieces(url: str) -> list[str]:
    """The parts of a notification URL that may be tokens: user, password, a host
    that is not a DNS name, path segments and query values of 6 characters or more."""
    try:
        parts = urllib.parse.urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)
        user, _, password = netloc[0].partition(":") if len(netloc) == 2 else ("", "", "")
        host = netloc[-1]
    except ValueError:
        return []
    candidates = [user, password, parts.path.strip("/"), *parts.path.split("/")]
    candidates += [v for _, v in urllib.parse.parse_qsl(parts.query)]
    if "." not in host:
        candidates.append(host)
    found = {c for c in candidates if len(c.strip("/")) >= 6}
    return sorted(found, key=len, reverse=True)  # longest first: a segment never splits a longer token


def _mask_notify_url(url: str) -> str:
    private = _apprise_private(url)
    if private is not None:
        return private
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return MASK
    if not parts.scheme:
        return MASK
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:{MASK}@" if parts.password is not None else ""
    tail = f"/{MASK}" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{user}{host}{tail}"


def _apprise_private(url: str) -> str | None:
    """apprise's privacy form of a URL it knows, without the query it appends; None otherwise."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in _GENERIC_SCHEMES:
        return None  # the generic rule hides the path (apprise shows these paths as they are)
    try:
        import apprise  # slow to import: only when a notification URL is shown
    except ImportError:
        return None
    try:
        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
        shown = plugin.url(privacy=True) if plugin else None  # type: ignore[no-untyped-call]
    except Exception:  # a third-party parser: any failure means "unknown", never a crash
        return None
    if not isinstance(shown, str):
        return None
    shown = shown.split("?", 1)[0]
    return shown if "://" in shown else None
