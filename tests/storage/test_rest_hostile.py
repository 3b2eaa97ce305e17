"""A hostile REST server: whatever its listing answers, amber fails with a storage error
(one line, a documented exit code), never a KeyError, TypeError or RecursionError."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from amber.errors import AmberError
from amber.storage.base import FileType
from amber.storage.rest import RestBackend


class _Answer(BaseHTTPRequestHandler):
    body = b"[]"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hostile() -> Iterator[tuple[ThreadingHTTPServer, RestBackend]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    backend = RestBackend(f"http://127.0.0.1:{server.server_address[1]}/repo/")
    yield server, backend
    backend.close()
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("body", [
    b'[{"size": 1}]',  # no name
    b'[{"name": "a", "size": "big"}]',
    b'[{"name": "a", "size": null}]',
    b'[{"name": "a", "size": -5}]',
    b'[{"name": ["a"], "size": 1}]',
    b"5",  # not a list
    b"[" * 100_000 + b"]" * 100_000,  # nested past the recursion limit
])  # fmt: skip
def test_a_malformed_listing_is_a_storage_error(
    hostile: tuple[ThreadingHTTPServer, RestBackend], body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_Answer, "body", body)
    _, backend = hostile
    with pytest.raises(AmberError, match="rest: list snapshots"):
        list(backend.list(FileType.SNAPSHOT))
