"""restic's REST protocol (v2), so rest-server or ``rclone serve restic`` can host a repository.

    POST /?create=true            create the repository
    HEAD|GET|POST|DELETE /config
    GET /{type}/                  list: [{"name": ..., "size": ...}] (v2)
    HEAD|GET|POST|DELETE /{type}/{name}    GET honours Range

``type`` is data, keys, locks, snapshots or index: exactly our FileType values.
The server does the atomic write. Credentials may be in the URL
(``rest:https://user:pass@host/``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from amber.errors import (
    AmberError,
    DiskFull,
    ObjectNotFound,
    PermissionDenied,
    StorageError,
    TransientStorageError,
)
from amber.storage.base import FileInfo, FileType, Handle
from amber.storage.layout import describe, list_config, object_path, too_large

V2 = "application/vnd.x.restic.rest.v2"


def _status_error(status: int, what: str, text: str = "") -> AmberError:
    detail = f"{what}: HTTP {status}" + (f" ({text.strip()[:200]})" if text.strip() else "")
    if status == 404:
        return ObjectNotFound(f"{what} does not exist")
    if status in (401, 403):
        return PermissionDenied(f"rest: {detail}")
    if status in (413, 507):
        return DiskFull(f"rest: {detail}")
    if status >= 500 or status in (408, 425, 429):
        return TransientStorageError(f"rest: {detail}")
    return StorageError(f"rest: {detail}")


class RestBackend:
    def __init__(self, url: str, *, connections: int = 5, client: httpx.Client | None = None) -> None:
        parts = urlsplit(url)
        auth = None
        if parts.username is not None:
            auth = httpx.BasicAuth(unquote(parts.username), unquote(parts.password or ""))
            netloc = parts.hostname or ""
            if parts.port:
                netloc = f"{netloc}:{parts.port}"
            parts = parts._replace(netloc=netloc)
        self.base = urlunsplit(parts).rstrip("/") + "/"
        self.location = "rest:" + self.base
        self._client = client or httpx.Client(
            auth=auth,
            timeout=httpx.Timeout(60.0, connect=30.0),
            limits=httpx.Limits(
                max_connections=max(1, connections), max_keepalive_connections=max(1, connections)
            ),
            headers={"Accept": V2},
        )

    def _url(self, handle: Handle) -> str:
        object_path(handle)  # validates the name
        if handle.type is FileType.CONFIG:
            return self.base + "config"
        return f"{self.base}{handle.type.value}/{handle.name}"  # the server does any fan-out

    def _request(self, method: str, url: str, what: str, **kwargs: object) -> httpx.Response:
        try:
            resp = self._client.request(method, url, **kwargs)  # type: ignore[arg-type]
        except httpx.TimeoutException as exc:
            raise TransientStorageError(f"rest: {what}: timed out") from exc
        except httpx.TransportError as exc:  # connection refused/reset, protocol errors, short bodies
            raise TransientStorageError(f"rest: {what}: {exc or type(exc).__name__}") from exc
        except httpx.HTTPError as exc:
            raise StorageError(f"rest: {what}: {exc}") from exc
        return resp

    def create(self) -> None:
        resp = self._request("POST", self.base + "?create=true", "create")
        if resp.status_code not in (200, 201):
            raise _status_error(resp.status_code, "create", resp.text)

    def exists(self) -> bool:
        resp = self._request("HEAD", self.base + "config", "config")
        if resp.status_code == 404:
            return False
        if resp.status_code != 200:
            raise _status_error(resp.status_code, "config")
        return True

    def save(self, handle: Handle, data: bytes | bytearray | memoryview) -> None:
        what = describe(handle)
        resp = self._request(
            "POST", self._url(handle), what, content=bytes(data),
            headers={"Content-Type": "application/octet-stream"},
        )  # fmt: skip
        if resp.status_code not in (200, 201):
            raise _status_error(resp.status_code, what, resp.text)

    def load(
        self, handle: Handle, offset: int = 0, length: int | None = None, *, limit: int | None = None
    ) -> bytes:
        what = describe(handle)
        url = self._url(handle)
        want = length
        if limit is not None:  # one byte more than allowed tells an object over the limit
            want = limit + 1 if length is None else min(length, limit + 1)
        if want == 0:
            self.stat(handle)
            return b""
        headers = {}
        if offset or want is not None:
            end = "" if want is None else str(offset + want - 1)
            headers["Range"] = f"bytes={offset}-{end}"
        body, status, declared = self._get(url, what, headers, offset, want)
        if status == 416:  # range past the end of an existing object
            self.stat(handle)
            return b""
        if status == 200 and (offset or want is not None):
            body = body[offset : None if want is None else offset + want]  # server ignored Range
        elif declared is not None and int(declared) != len(body):
            raise TransientStorageError(f"rest: {what}: truncated read")
        if limit is not None and len(body) > limit:
            raise too_large(handle, limit)
        return body

    def _get(
        self, url: str, what: str, headers: dict[str, str], offset: int, want: int | None
    ) -> tuple[bytes, int, str | None]:
        """GET, reading no more of the body than ``offset + want`` bytes (a server may
        ignore Range and send the whole object): (body, status, Content-Length)."""
        try:
            with self._client.stream("GET", url, headers=headers) as resp:
                if resp.status_code not in (200, 206, 416):
                    resp.read()
                    raise _status_error(resp.status_code, what, resp.text)
                if want is None:
                    return resp.read(), resp.status_code, resp.headers.get("Content-Length")
                cap = want + (offset if resp.status_code == 200 else 0)
                parts: list[bytes] = []
                got = 0
                for piece in resp.iter_bytes():
                    parts.append(piece)
                    got += len(piece)
                    if got >= cap:
                        break
                body = b"".join(parts)
                declared = None if got > cap else resp.headers.get("Content-Length")
                return body[:cap], resp.status_code, declared
        except httpx.TimeoutException as exc:
            raise TransientStorageError(f"rest: {what}: timed out") from exc
        except httpx.TransportError as exc:  # connection refused/reset, protocol errors, short bodies
            raise TransientStorageError(f"rest: {what}: {exc or type(exc).__name__}") from exc
        except httpx.HTTPError as exc:
            raise StorageError(f"rest: {what}: {exc}") from exc

    def stat(self, handle: Handle) -> FileInfo:
        what = describe(handle)
        resp = self._request("HEAD", self._url(handle), what)
        if resp.status_code != 200:
            raise _status_error(resp.status_code, what)
        return FileInfo(handle.name, int(resp.headers.get("Content-Length", "0")))

    def list(self, type: FileType) -> Iterator[FileInfo]:
        if type is FileType.CONFIG:
            yield from list_config(self)
            return
        resp = self._request("GET", f"{self.base}{type.value}/", f"list {type.value}")
        if resp.status_code == 404:
            return
        if resp.status_code != 200:
            raise _status_error(resp.status_code, f"list {type.value}", resp.text)
        try:
            entries = json.loads(resp.content or b"[]")
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
            raise TransientStorageError(f"rest: list {type.value}: unreadable answer") from exc
        for name, size in _entries(entries, f"rest: list {type.value}"):
            if not name.startswith("."):
                yield FileInfo(name, size if size is not None else self.stat(Handle(type, name)).size)

    def remove(self, handle: Handle) -> None:
        what = describe(handle)
        self.stat(handle)  # servers may answer 200 for a missing object; we report it
        resp = self._request("DELETE", self._url(handle), what)
        if resp.status_code not in (200, 204):
            raise _status_error(resp.status_code, what, resp.text)

    def close(self) -> None:
        self._client.close()


def _entries(entries: object, what: str) -> Iterator[tuple[str, int | None]]:
    """(name, size) of a listing: v2 objects, or bare names from a v1 server (size None).
    The server is not trusted: anything else is a StorageError."""
    if not isinstance(entries, list):
        raise StorageError(f"{what}: the answer is not a list")
    for e in entries:
        if isinstance(e, str):
            yield e, None
            continue
        name, size = (e.get("name"), e.get("size")) if isinstance(e, dict) else (None, None)
        if not isinstance(name, str) or not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise StorageError(f"{what}: malformed entry {str(e)[:80]!r}")
        yield name, size
